// Runs Groovy test files in one JVM (start-up is the slow part) and prints TAP.
//
//   groovy -cp tests/groovy tests/groovy/run.groovy [--out DIR] FILE...
//
// A test file calls test('name') { ... } for each case; a case fails when its
// body throws (an assert, an unexpected step error). The exit status is 1 if
// any case failed, 2 if a file could not be loaded, 0 otherwise. With --out,
// DIR/results.json lists every case and tests may write files to DIR.

import groovy.json.JsonOutput

List<String> files = []
File outDir = null
for (int i = 0; i < args.length; i++) {
  if (args[i] == '--out') {
    outDir = new File(args[++i])
  } else {
    files.add(args[i])
  }
}
if (!files) {
  System.err.println('usage: run.groovy [--out DIR] FILE...')
  System.exit(2)
}
outDir?.mkdirs()

List<Map> results = []
int loadErrors = 0
int number = 0
for (String path in files) {
  File file = new File(path)
  String suite = file.name.replaceAll(/\.groovy$/, '')
  List<List> cases = []
  Binding binding = new Binding()
  binding.setVariable('test', { String name, Closure body -> cases.add([name, body]) })
  binding.setVariable('outDir', outDir)
  binding.setVariable('root', Harness.root)
  try {
    new GroovyShell(this.class.classLoader, binding).evaluate(file)
  } catch (Throwable e) {
    loadErrors++
    println "Bail out! ${suite}: cannot load ${path}: ${e}"
    results.add([suite: suite, name: '(load)', ok: false, message: e.toString()])
    continue
  }
  if (!cases) {
    loadErrors++
    println "Bail out! ${suite}: no test cases in ${path}"
    results.add([suite: suite, name: '(load)', ok: false, message: 'no test cases'])
  }
  for (List c in cases) {
    number++
    String message = null
    try {
      (c[1] as Closure).call()
    } catch (Throwable e) {
      StringWriter trace = new StringWriter()
      e.printStackTrace(new PrintWriter(trace))
      // The assertion text (power assert) or the exception, plus where it came from.
      List<String> where = trace.toString().readLines().findAll { it =~ /\.groovy:\d+\)/ && !it.contains('(run.groovy:') }.take(4)
      message = ([e instanceof AssertionError ? e.message : e.toString()] + where).join('\n')
    }
    results.add([suite: suite, name: c[0], ok: message == null, message: message])
    println "${message == null ? 'ok' : 'not ok'} ${number} - ${suite}: ${c[0]}"
    if (message != null) {
      message.readLines().each { println "  # ${it}" }
    }
  }
}
println "1..${number}"
int failed = results.count { !it.ok }
println "# ${results.size() - failed} passed, ${failed} failed"
outDir?.with { new File(it, 'results.json').text = JsonOutput.prettyPrint(JsonOutput.toJson(results)) }
System.exit(loadErrors ? 2 : (failed ? 1 : 0))

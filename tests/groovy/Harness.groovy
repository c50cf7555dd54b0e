// Loads vars/*.groovy into a Binding whose Jenkins steps are stubs that record
// every call, so tests can assert on the exact shell commands, the credential
// and lock scopes, and the build result.

import groovy.json.JsonOutput
import org.codehaus.groovy.runtime.InvokerHelper

class Harness {
  static File root = new File(System.getProperty('user.dir')).canonicalFile
  private static final Map<String, Class> COMPILED = [:]

  Map env = [
    WORKSPACE: '/var/jenkins/workspace/app',
    BUILD_URL: 'https://jenkins.example/job/app/42/',
    JOB_NAME: 'app',
    BUILD_NUMBER: '42',
  ]
  Map params = [:]
  FakeBuild currentBuild = new FakeBuild()
  /** Every step call: [step: name, args: what was passed, context: enclosing lock/withCredentials/withEnv]. */
  List<Map> calls = []
  /** The environment each sh saw, parallel to the sh entries in calls (kept apart: it holds secrets). */
  List<Map> shEnvironments = []
  List<String> context = []
  /** The workspace: file name -> text. */
  Map<String, String> files = [:]
  Set<String> secrets = [] as Set
  boolean lockInstalled = true
  /** sh handler: (script, harness) -> exit status. */
  Closure onSh = { String script, Harness h -> 0 }
  Binding binding = new Binding()
  Map<String, Script> loaded = [:]

  Harness() {
    installStubs()
  }

  /** Loads vars/<name>.groovy (and the shared support script) into this harness's binding. */
  Script step(String name) {
    if (!loaded.containsKey('registryPruneSupport') && name != 'registryPruneSupport') {
      binding.setVariable('registryPruneSupport', step('registryPruneSupport'))
    }
    if (!loaded.containsKey(name)) {
      loaded[name] = InvokerHelper.createScript(compiled(name), binding)
    }
    return loaded[name]
  }

  /** Each vars/ script is compiled once per JVM; every harness gets fresh instances. */
  private static synchronized Class compiled(String name) {
    if (!COMPILED.containsKey(name)) {
      COMPILED[name] = new GroovyShell(Harness.classLoader).parse(new File(root, "vars/${name}.groovy")).getClass()
    }
    return COMPILED[name]
  }

  Object run(String name, Map config) {
    return step(name).call(config)
  }

  /** Runs the step, expecting the error step; returns its message. */
  String runExpectingError(String name, Map config) {
    try {
      run(name, config)
    } catch (StepError e) {
      return e.message
    }
    throw new AssertionError("${name} was expected to call error, but returned; calls: ${calls}")
  }

  List<Map> callsTo(String step) {
    return calls.findAll { it.step == step }
  }

  List<String> shScripts() {
    return callsTo('sh').collect { it.args.script as String }
  }

  /** Exit statuses by a regex on the sh script; unmatched scripts exit 0. Optionally writes the report. */
  void exitWith(Map<String, Integer> byPattern, Map report = null, String reportFile = 'registry-prune-report.json') {
    onSh = { String script, Harness h ->
      for (entry in byPattern) {
        if (script =~ entry.key) {
          if (report != null) {
            h.files[reportFile] = JsonOutput.toJson(report)
          }
          return entry.value
        }
      }
      return 0
    }
  }

  /** Fails if a bound secret shows up anywhere but in the environment: scripts, logs, files, messages. */
  void assertNoSecretLeaked() {
    assert !secrets.isEmpty(): 'no credentials were bound, so this check proves nothing'
    List<String> exposed = calls.findAll { it.step != 'withCredentials' }.collect { it.toString() }
    exposed.add(String.valueOf(currentBuild.description))
    exposed.addAll(files.values())
    for (String secret in secrets) {
      List<String> hits = exposed.findAll { it.contains(secret) }
      assert hits.isEmpty(): "secret ${secret} leaked into: ${hits}"
    }
  }

  private void record(String step, Object args) {
    calls.add([step: step, args: args, context: new ArrayList(context)])
  }

  private Object scoped(String label, Map<String, String> vars, Closure body) {
    Map saved = new HashMap(env)
    env.putAll(vars)
    context.add(label)
    try {
      return body.call()
    } finally {
      context.remove(context.size() - 1)
      env.clear()
      env.putAll(saved)
    }
  }

  private void installStubs() {
    Harness h = this
    binding.setVariable('env', env)
    binding.setVariable('params', params)
    binding.setVariable('currentBuild', currentBuild)

    binding.setVariable('sh', { Object arg ->
      Map args = arg instanceof Map ? new LinkedHashMap(arg) : [script: arg.toString()]
      args.script = args.script.toString()
      h.record('sh', args)
      h.shEnvironments.add(new HashMap(h.env))
      int status = h.onSh.call(args.script, h) as int
      if (args.returnStatus) {
        return status
      }
      if (status != 0) {
        throw new StepError("script returned exit code ${status}")
      }
      return null
    })
    binding.setVariable('usernamePassword', { Map args -> [kind: 'usernamePassword'] + args })
    binding.setVariable('string', { Map args -> [kind: 'string'] + args })
    binding.setVariable('withCredentials', { List bindings, Closure body ->
      h.record('withCredentials', bindings)
      Map<String, String> vars = [:]
      for (Map b in bindings) {
        if (b.kind == 'usernamePassword') {
          vars[b.usernameVariable] = "user-of-${b.credentialsId}".toString()
          vars[b.passwordVariable] = "S3cr3t pass'word of ${b.credentialsId}".toString()
        } else {
          vars[b.variable] = "https://hooks.example/T0/B0/s3cr3t-${b.credentialsId}".toString()
        }
      }
      h.secrets.addAll(vars.values())
      return h.scoped("withCredentials:${vars.keySet().sort().join(',')}", vars, body)
    })
    binding.setVariable('withEnv', { List vars, Closure body ->
      h.record('withEnv', vars)
      Map<String, String> parsed = [:]
      for (Object v in vars) {
        List parts = v.toString().split('=', 2) as List
        parsed[parts[0]] = parts[1]
      }
      return h.scoped('withEnv:' + parsed.keySet().join(','), parsed, body)
    })
    binding.setVariable('lock', { Map args, Closure body ->
      if (!h.lockInstalled) {
        // What Jenkins throws for a step whose plugin is missing.
        throw new NoSuchMethodError("No such DSL method 'lock' found among steps [sh, echo]")
      }
      h.record('lock', args)
      return h.scoped("lock:${args.resource}", [:], body)
    })
    binding.setVariable('archiveArtifacts', { Map args -> h.record('archiveArtifacts', args) })
    binding.setVariable('writeFile', { Map args ->
      h.record('writeFile', [file: args.file, length: args.text.length()])
      h.files[args.file as String] = args.text as String
    })
    binding.setVariable('readFile', { Object arg ->
      String file = arg instanceof Map ? arg.file : arg
      h.record('readFile', file)
      if (!h.files.containsKey(file)) {
        throw new FileNotFoundException(file)
      }
      return h.files[file]
    })
    binding.setVariable('fileExists', { Object arg ->
      String file = arg instanceof Map ? arg.file : arg
      return h.files.containsKey(file)
    })
    binding.setVariable('echo', { Object message -> h.record('echo', message.toString()) })
    binding.setVariable('unstable', { Object arg ->
      String message = arg instanceof Map ? arg.message : arg
      h.record('unstable', message)
      h.currentBuild.worsen('UNSTABLE')
    })
    binding.setVariable('error', { Object message ->
      h.record('error', message.toString())
      h.currentBuild.worsen('FAILURE')
      throw new StepError(message.toString())
    })
  }
}

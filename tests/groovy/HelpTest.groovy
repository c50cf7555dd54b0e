// vars/*.txt, the help Jenkins shows in its Global Variables Reference, lists
// every parameter the step accepts with its real default, and an example.

/** name -> the text after "(default: " in the help's parameter list. */
Map<String, String> documentedDefaults(String step) {
  String help = new File(root, "vars/${step}.txt").text
  Map<String, String> result = [:]
  def m = help =~ /<li><code>(\w+)<\/code> \(default: ((?:[^()]|\([^()]*\))*)\)/
  while (m.find()) {
    result[m.group(1)] = m.group(2).replaceAll(/<\/?code>/, '')
  }
  return result
}

/** How a default value is written in the help. */
String rendered(Object value) {
  if (value == null) {
    return null
  }
  return value instanceof List ? '[]' : value.toString()
}

final List STEPS = ['registryRecover', 'registryPrune', 'registryGc', 'registryRestore']

for (String name in STEPS) {
  String step = name
  test("${step}.txt documents every parameter with its default") {
    Map defaults = new Harness().step(step).defaults()
    Map<String, String> documented = documentedDefaults(step)
    assert (defaults.keySet() - documented.keySet()).isEmpty(): 'parameters missing from the help'
    assert (documented.keySet() - defaults.keySet()).isEmpty(): 'the help documents parameters the step does not take'
    defaults.each { key, value ->
      String expected = rendered(value)
      if (expected == null) {
        assert documented[key].startsWith('none') || documented[key].contains('REGISTRY_URL') ||
          documented[key].contains('WORKSPACE'): "${key}: a null default is written as none (or what it falls back to)"
      } else {
        assert [key, documented[key]] == [key, expected]
      }
    }
  }

  test("${step}.txt has an example call") {
    String help = new File(root, "vars/${step}.txt").text
    assert help =~ /(?s)<pre>.*${step}\(.*<\/pre>/
  }
}

test('the example in each help file calls the step with parameters it accepts') {
  for (String step in STEPS) {
    String help = new File(root, "vars/${step}.txt").text
    String call = (help =~ /(?s)${step}\((.*?)\n\s*\)/)[0][1]
    List<String> used = (call =~ /(?m)^\s*(\w+):/).collect { it[1] }
    assert used && (used - new Harness().step(step).defaults().keySet()).isEmpty()
  }
}

// Not part of the harness suite: tests/test_container_seed.py runs it to get the exact shell
// scripts the steps build for a given configuration, then runs them for real.
// $REGISTRY_PRUNE_EMIT names a JSON file: {step: {config...}, ..., "_log": [console lines]}.

import groovy.json.JsonSlurper

Map wanted = new JsonSlurper().parse(new File(System.getenv('REGISTRY_PRUNE_EMIT'))) as Map

for (Object entry in wanted.entrySet()) {
  String step = entry.key
  if (step.startsWith('_')) {
    continue
  }
  Map config = entry.value as Map
  if (step.endsWith('@Jenkinsfile')) {
    // The step's arguments as Jenkinsfile.example's restore job (part 3) passes them, plus overrides.
    step = step - '@Jenkinsfile'
    DslNode job = PipelineDsl.run(new File(root, 'Jenkinsfile.example'), config.params as Map).root.children[2]
    config = job.all(step)[0].named + (config.overrides as Map)
  }
  test("emit ${step}") {
    def h = new Harness()
    h.env.WORKSPACE = new File(outDir, 'workspace').path
    h.currentBuild.run.log = (wanted._log ?: []) as List
    h.run(step, config)
    List<String> scripts = h.shScripts().findAll { !it.startsWith('command -v ') }
    assert scripts.size() == 1: scripts
    new File(outDir, "${step}.sh").text = scripts[0] + '\n'
    for (Map.Entry<String, String> file in h.files.entrySet()) {
      File target = new File(outDir, "workspace/${file.key}")
      target.parentFile.mkdirs()
      target.text = file.value
    }
  }
}

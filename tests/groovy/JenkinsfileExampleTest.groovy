// Jenkinsfile.example parses under Groovy 2.4 and wires the steps as documented.

final File JENKINSFILE = new File(root, 'Jenkinsfile.example')

DslNode stage(DslNode pipeline, String name) {
  DslNode found = pipeline.all('stage').find { it.args == [name] }
  assert found != null: "no stage ${name}"
  return found
}

/** The parameter defaults, as Jenkins would fill params on a build from the UI. */
Map defaultParams() {
  DslNode maintenance = PipelineDsl.run(new File(root, 'Jenkinsfile.example')).root.children[1]
  Map result = [:]
  for (DslNode p in maintenance.child('parameters').children) {
    result[p.named.name] = p.named.defaultValue
  }
  return result
}

test('parses and compiles under Groovy 2.4, the line Jenkins runs') {
  assert GroovySystem.version.startsWith('2.4.')
  new GroovyShell(PipelineDsl.classLoader).parse(JENKINSFILE)
}

test('loads the library with @Library') {
  assert JENKINSFILE.text =~ /(?m)^@Library\('registry-prune@[^']+'\) _$/
}

test('part 1: build, push, deploy; the push stage recovers in post { failure }') {
  DslNode app = PipelineDsl.run(JENKINSFILE).root.children[0]
  assert app.name == 'pipeline'
  assert app.child('stages').children*.args == [['Build'], ['Push'], ['Deploy']]
  DslNode push = stage(app, 'Push')
  List<DslNode> recovers = push.child('post').child('failure').all('registryRecover')
  assert recovers.size() == 1
  Map args = recovers[0].named
  assert args.registry == 'https://registry.example.com:5000'
  assert args.image == 'registry.example.com:5000/team/app:1.0.0-alpha.42'
  assert args.credentialsId == 'registry-ci'
  assert args.slackWebhookCredentialsId == 'slack-webhook'
  assert app.all('registryRecover').size() == 1: 'registryRecover belongs in the push stage\'s post { failure }'
}

test('part 2: the manual job has DRY_RUN (default true), REPOSITORY, MATCH, KEEP, OLDER_THAN and a nightly cron') {
  DslNode maintenance = PipelineDsl.run(JENKINSFILE).root.children[1]
  List<DslNode> parameters = maintenance.child('parameters').children
  assert parameters*.named*.name == ['DRY_RUN', 'REPOSITORY', 'MATCH', 'KEEP', 'OLDER_THAN']
  assert parameters[0].name == 'booleanParam'
  assert parameters[0].named.defaultValue == true
  assert maintenance.child('triggers').child('cron').args == ['H 3 * * *']
  assert maintenance.all('registryPrune').size() == 1
}

test('part 2: dry run from the UI by default, real deletes when unticked or nightly, dry on the first build') {
  Map defaults = defaultParams()
  Closure dryRunFor = { Map params, boolean timer ->
    PipelineDsl.run(JENKINSFILE, params, timer).root.children[1].all('registryPrune')[0].named.dryRun
  }
  assert dryRunFor(defaults, false) == true
  assert dryRunFor(defaults + [DRY_RUN: false], false) == false
  assert dryRunFor(defaults, true) == false
  assert dryRunFor([:], false) == true
}

test('the example passes only parameters the steps accept, and the manual job runs the documented command') {
  DslNode script = PipelineDsl.run(JENKINSFILE, defaultParams()).root
  def h = new Harness()
  Map recoverArgs = script.children[0].all('registryRecover')[0].named
  assert (recoverArgs.keySet() - h.step('registryRecover').defaults().keySet()).isEmpty()

  Map pruneArgs = script.children[1].all('registryPrune')[0].named
  h.env.REGISTRY_URL = script.children[1].child('environment').assignments.REGISTRY_URL
  h.run('registryPrune', pruneArgs)
  String command = h.shScripts().find { it.contains(' prune ') }.readLines()[1]
  assert command.endsWith(" prune --registry https://registry.example.com:5000 --repo 'team/*' " +
    "--match '-(alpha|beta|rc)\\.' --keep 10 --older-than 14d --audit-dir registry-prune-audit --json registry-prune-report.json --dry-run")
}

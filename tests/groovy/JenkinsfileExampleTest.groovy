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

test('part 2: the nightly run prunes, then collects garbage behind the read-only guard and reports to Slack') {
  DslNode maintenance = PipelineDsl.run(JENKINSFILE, defaultParams(), true).root.children[1]
  assert maintenance.child('stages').children*.args == [['Prune'], ['Garbage collection']]
  Map gc = maintenance.all('registryGc')[0].named
  assert gc.readonlyCommand.contains('REGISTRY_STORAGE_MAINTENANCE_READONLY')
  assert gc.gcCommand.contains('docker exec registry-ro registry garbage-collect')
  assert gc.restartCommand.contains('docker start registry')
  assert gc.predictedFrom == maintenance.all('registryPrune')[0].named.get('reportFile', 'registry-prune-report.json')
  assert gc.slackWebhookCredentialsId == 'slack-webhook'
  assert (gc.keySet() - new Harness().step('registryGc').defaults().keySet()).isEmpty()
  // GC runs only after a real prune: a dry run from the UI skips the stage.
  Closure gcRuns = { Map params, boolean timer ->
    DslNode stage = PipelineDsl.run(JENKINSFILE, params, timer).root.children[1].all('stage').find { it.args == ['Garbage collection'] }
    DslNode expression = stage.child('when').child('expression')
    return expression
  }
  assert gcRuns(defaultParams(), true) != null
}

test('part 3: the restore job copies the archived undo log and restores its newest log, a dry run by default') {
  DslNode restore = PipelineDsl.run(JENKINSFILE, [PRUNE_BUILD: '17', TAGS: '', DRY_RUN: true]).root.children[2]
  assert restore.child('parameters').children*.named*.name == ['PRUNE_BUILD', 'TAGS', 'DRY_RUN']
  assert restore.child('parameters').children[2].named.defaultValue == true
  Map copy = restore.all('copyArtifacts')[0].named
  assert copy.projectName == 'registry-maintenance' && copy.filter == 'registry-prune-audit/*.jsonl'
  Map args = restore.all('registryRestore')[0].named
  assert args.auditDir == "${copy.target}/registry-prune-audit"
  assert args.dryRun == true
  assert (args.keySet() - new Harness().step('registryRestore').defaults().keySet()).isEmpty()
  def h = new Harness()
  h.env.REGISTRY_URL = restore.child('environment').assignments.REGISTRY_URL
  h.run('registryRestore', args + [toolImage: null])
  assert h.shScripts()[1].readLines()[1] == 'registry-prune restore --registry https://registry.example.com:5000 ' +
    '--latest undo/registry-prune-audit --json registry-prune-restore.json --dry-run'
  Map unticked = PipelineDsl.run(JENKINSFILE, [PRUNE_BUILD: '17', TAGS: 'a, b', DRY_RUN: false]).root.children[2]
    .all('registryRestore')[0].named
  assert unticked.dryRun == false && unticked.tag == 'a, b'
}

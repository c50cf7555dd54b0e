// vars/registryPrune.groovy with the Jenkins steps stubbed.

final String TOOL = 'registry-prune'

List<String> pruneScripts(Harness h) {
  return h.shScripts().findAll { it.contains(' prune ') }
}

/** A harness whose pipeline sets REGISTRY_URL, as the maintenance job in Jenkinsfile.example does. */
Harness withRegistryUrl() {
  def h = new Harness()
  h.env.REGISTRY_URL = 'http://127.0.0.1:5000'
  return h
}

test('acceptance: registryPrune(repository: team/app) is a dry run') {
  def h = withRegistryUrl()
  h.exitWith([' prune ': 0], [summary: [deleted: 7]])
  h.run('registryPrune', [repository: 'team/app'])
  assert pruneScripts(h) == ['rm -f registry-prune-report.json\n' +
    "${TOOL} prune --registry http://127.0.0.1:5000 --repo team/app --audit-dir registry-prune-audit --json registry-prune-report.json --dry-run"]
  assert h.callsTo('echo')*.args.contains('registryPrune: dry run, nothing is deleted (pass dryRun: false to delete)')
  assert h.currentBuild.description == 'registry-prune (dry run): would delete 7 tag(s)'
}

test('acceptance: dryRun: false deletes') {
  def h = withRegistryUrl()
  h.exitWith([' prune ': 0], [summary: [deleted: 7]])
  h.run('registryPrune', [repository: 'team/app', dryRun: false])
  assert pruneScripts(h).size() == 1
  assert !pruneScripts(h)[0].contains('--dry-run')
  assert pruneScripts(h)[0].endsWith(' prune --registry http://127.0.0.1:5000 --repo team/app --audit-dir registry-prune-audit --json registry-prune-report.json')
  assert h.currentBuild.description == 'registry-prune: deleted 7 tag(s)'
}

test('anything but the boolean false stays a dry run') {
  for (Object value in [true, null, '', 'false', 'no', 0, 'FALSE']) {
    def h = withRegistryUrl()
    h.run('registryPrune', [repository: 'team/app', dryRun: value])
    assert [value, pruneScripts(h)[0].endsWith(' --dry-run')] == [value, true]
  }
}

test('the manual job: UI string parameters, blank ones ignored, boolean DRY_RUN') {
  def h = withRegistryUrl()
  h.params.putAll([DRY_RUN: false, REPOSITORY: 'team/app, team/web', MATCH: '-alpha\\.', KEEP: '20', OLDER_THAN: ''])
  h.run('registryPrune', [repository: h.params.REPOSITORY, match: h.params.MATCH, keep: h.params.KEEP,
                          olderThan: h.params.OLDER_THAN, dryRun: h.params.DRY_RUN])
  assert pruneScripts(h)[0].readLines()[1] == "${TOOL} prune --registry http://127.0.0.1:5000 --repo team/app " +
    "--repo team/web --match '-alpha\\.' --keep 20 --audit-dir registry-prune-audit --json registry-prune-report.json"
}

test('locking is on by default, under the same resource as registryRecover') {
  def h = withRegistryUrl()
  h.run('registryPrune', [repository: 'team/app'])
  assert h.callsTo('lock')*.args == [[resource: 'registry-prune-http://127.0.0.1:5000']]
  Map pruneCall = h.callsTo('sh').find { it.args.script.contains(' prune ') }
  assert pruneCall.context[0] == 'lock:registry-prune-http://127.0.0.1:5000'

  h = withRegistryUrl()
  h.run('registryPrune', [repository: 'team/app', lock: false])
  assert h.callsTo('lock').isEmpty()
  assert pruneScripts(h).size() == 1
}

test('registry credentials reach the CLI through the environment only') {
  def h = withRegistryUrl()
  h.run('registryPrune', [repository: 'team/app', credentialsId: 'registry-ci', dryRun: false])
  Map pruneCall = h.callsTo('sh').find { it.args.script.contains(' prune ') }
  assert pruneCall.context.contains('withCredentials:REGISTRY_PASSWORD,REGISTRY_USERNAME')
  assert h.shEnvironments[h.callsTo('sh').indexOf(pruneCall)].REGISTRY_PASSWORD in h.secrets
  assert h.shEnvironments[h.callsTo('sh').indexOf(pruneCall)].BUILD_URL == 'https://jenkins.example/job/app/42/'
  h.assertNoSecretLeaked()
}

test('registryPrune takes no recover-only parameters') {
  def h = withRegistryUrl()
  assert h.runExpectingError('registryPrune', [repository: 'team/app', image: 'x', slackWebhookCredentialsId: 'h']) ==
    "registryPrune: unknown parameter(s): image, slackWebhookCredentialsId; see the step's help for the list"
}

test('exit codes: 0 passes, 5 is UNSTABLE, others fail; the report is archived first') {
  Map expected = [0: 'SUCCESS', 5: 'UNSTABLE', 1: 'FAILURE', 2: 'FAILURE', 3: 'FAILURE', 4: 'FAILURE',
                  6: 'FAILURE', 130: 'FAILURE']
  expected.each { int code, String buildResult ->
    def h = withRegistryUrl()
    h.exitWith([' prune ': code])
    String failure = null
    try {
      Map result = h.run('registryPrune', [repository: 'team/app', dryRun: false])
      assert result.status == code
    } catch (StepError e) {
      failure = e.message
    }
    assert [code, h.currentBuild.currentResult] == [code, buildResult]
    assert [code, failure != null] == [code, buildResult == 'FAILURE']
    assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'registry-prune-report.json', allowEmptyArchive: true]]
  }
  def h = withRegistryUrl()
  h.exitWith([' prune ': 6])
  assert h.runExpectingError('registryPrune', [repository: 'team/app']) ==
    'registry-prune prune failed (exit 6): another run holds the registry lock'
  assert h.currentBuild.description == 'registry-prune (dry run): failed, exit 6: another run holds the registry lock'
}

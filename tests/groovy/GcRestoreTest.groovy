// vars/registryGc.groovy and vars/registryRestore.groovy with the Jenkins steps stubbed.

final Map GC = [registry: 'http://127.0.0.1:5000', gcCommand: 'ssh reg docker exec registry-ro registry garbage-collect /c.yml',
                readonlyCommand: 'ssh reg ro', restartCommand: 'ssh reg back', slackWebhookCredentialsId: 'hook']

test('registryGc: one gc command behind the guard, Slack by environment, freed bytes in the description') {
  def h = new Harness()
  h.files['registry-prune-report.json'] = '{}'
  h.exitWith([' gc ': 0], [outcome: 'ok', exit_code: 0, message: 'gc ok', gc: [freed_bytes: 123456]],
             'registry-prune-gc.json')
  Map result = h.run('registryGc', GC + [disk: 'path:/srv/registry', predictedFrom: 'registry-prune-report.json'])
  List<String> scripts = h.shScripts().findAll { it.contains(' gc ') }
  assert scripts == ['rm -f registry-prune-gc.json\nregistry-prune gc --registry http://127.0.0.1:5000 ' +
    "--gc-cmd 'ssh reg docker exec registry-ro registry garbage-collect /c.yml' --readonly-cmd 'ssh reg ro' " +
    "--restart-cmd 'ssh reg back' --disk path:/srv/registry --predicted-from registry-prune-report.json " +
    '--json registry-prune-gc.json']
  Map call = h.callsTo('sh').find { it.args.script.contains(' gc ') }
  assert call.context == ['lock:registry-prune-http://127.0.0.1:5000', 'withCredentials:SLACK_WEBHOOK_URL',
                          'withEnv:BUILD_URL,JOB_NAME,BUILD_NUMBER']
  h.assertNoSecretLeaked()
  assert h.currentBuild.description == 'registry-prune gc: freed 123456 bytes'
  assert result.status == 0
}

test('registryGc: a missing prune report is left out; gcCommand is required; failures fail the step') {
  def h = new Harness()
  h.run('registryGc', GC + [predictedFrom: 'missing.json'])
  assert !h.shScripts().any { it.contains('--predicted-from') }
  h = new Harness()
  assert h.runExpectingError('registryGc', GC + [gcCommand: null]).startsWith('registryGc: gcCommand is required')
  h = new Harness()
  h.exitWith([' gc ': 12])
  assert h.runExpectingError('registryGc', GC) ==
    'registry-prune gc failed (exit 12): garbage collection or the restart command failed'
  assert h.currentBuild.currentResult == 'FAILURE'
}

final Map RESTORE = [registry: 'http://127.0.0.1:5000', credentialsId: 'reg', auditDir: 'undo/registry-prune-audit']

test('registryRestore: --latest from a folder or --from a file, tags and repositories repeated, dry run') {
  def h = new Harness()
  h.run('registryRestore', RESTORE + [tag: 'a, b', repository: 'team/app', dryRun: true])
  assert h.shScripts()[1] == 'rm -f registry-prune-restore.json\nregistry-prune restore --registry http://127.0.0.1:5000 ' +
    '--latest undo/registry-prune-audit --tag a --tag b --repo team/app --json registry-prune-restore.json --dry-run'
  h.assertNoSecretLeaked()
  h = new Harness()
  h.run('registryRestore', RESTORE + [auditDir: null, auditLog: 'logs/x.jsonl', force: true])
  assert h.shScripts()[1].endsWith(' restore --registry http://127.0.0.1:5000 --from logs/x.jsonl --force ' +
    '--json registry-prune-restore.json')
  h = new Harness()
  assert h.runExpectingError('registryRestore', RESTORE + [auditLog: 'x.jsonl']).startsWith('registryRestore: give auditLog')
  assert h.runExpectingError('registryRestore', [registry: 'http://r']).startsWith('registryRestore: give auditLog')
}

test('registryRestore: exit 5 (GC ran, or a tag was pushed again) is UNSTABLE with the report\'s message') {
  def h = new Harness()
  h.exitWith([' restore ': 5], [outcome: 'partial', exit_code: 5,
                                message: 'restore 2 manifests: restored 1 manifest (1 tag), 1 CANNOT be restored'],
             'registry-prune-restore.json')
  Map result = h.run('registryRestore', RESTORE)
  assert result.status == 5 && h.currentBuild.currentResult == 'UNSTABLE'
  assert h.currentBuild.description == 'registry-prune restore: restore 2 manifests: restored 1 manifest (1 tag), 1 CANNOT be restored'
  h = new Harness()
  h.exitWith([' restore ': 4])
  assert h.runExpectingError('registryRestore', RESTORE).startsWith('registry-prune restore failed (exit 4)')
}

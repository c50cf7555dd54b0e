// vars/registryRecover.groovy with the Jenkins steps stubbed.

final String VENV = '/var/jenkins/workspace/app/.registry-prune-venv'
final Map ACCEPTANCE = [registry: 'http://127.0.0.1:5000', repository: 'team/app', credentialsId: 'reg',
                        slackWebhookCredentialsId: 'hook', image: 'reg/team/app:1.0.0-alpha.3']
/** The shape of recover's --json report (pipeline_step/reports/recover.py), trimmed. */
final Map RECOVERED = [outcome: 'recovered', exit_code: 0, dry_run: false, message: 'push recovered',
                       summary: [deleted: 2, manifests_deleted: 3], deleted: [
  [repository: 'team/app', tag: '1.0.0-alpha.1', digest: 'sha256:aa', reason: 'older than the newest 10'],
  [repository: 'team/app', tag: '1.0.0-alpha.2', digest: 'sha256:bb', reason: 'older than the newest 10'],
  [repository: 'team/app', tag: null, digest: 'sha256:cc', reason: 'child of a deleted index'],
]]

/** What /bin/sh makes of a command line: its argv. */
List<String> argv(String commandLine) {
  Process p = ['sh', '-c', "set -- ${commandLine}; printf '%s\\0' \"\$@\""].execute()
  String out = p.inputStream.text
  assert p.waitFor() == 0: p.errorStream.text
  return out.split('\u0000') as List
}

List<String> recoverScripts(Harness h) {
  return h.shScripts().findAll { it.contains(' recover ') }
}

test('acceptance: one recover command, exactly this one, secrets only in the environment') {
  def h = new Harness()
  h.currentBuild.run.log = ['+ docker push reg/team/app:1.0.0-alpha.3',
                            'received unexpected HTTP status: 500 Internal Server Error']
  h.exitWith([' recover ': 0], RECOVERED)
  Map result = h.run('registryRecover', ACCEPTANCE)

  List<String> scripts = recoverScripts(h)
  assert scripts.size() == 1
  assert h.shScripts().count { it.contains('registry-prune recover') } == 1
  assert scripts[0] == 'rm -f registry-prune-report.json\n' +
    'registry-prune recover --registry http://127.0.0.1:5000 --repo team/app ' +
    "--push-cmd 'docker push reg/team/app:1.0.0-alpha.3' --console-log registry-prune-console.log " +
    '--audit-dir registry-prune-audit --json registry-prune-report.json'
  h.assertNoSecretLeaked()

  Map recoverCall = h.callsTo('sh').find { it.args.script.contains(' recover ') }
  assert recoverCall.args.returnStatus == true
  assert recoverCall.context == ['lock:registry-prune-http://127.0.0.1:5000',
                                 'withCredentials:REGISTRY_PASSWORD,REGISTRY_USERNAME,SLACK_WEBHOOK_URL',
                                 'withEnv:BUILD_URL,JOB_NAME,BUILD_NUMBER']
  Map seen = h.shEnvironments[h.callsTo('sh').indexOf(recoverCall)]
  assert seen.REGISTRY_USERNAME == 'user-of-reg'
  assert seen.REGISTRY_PASSWORD in h.secrets
  assert seen.SLACK_WEBHOOK_URL in h.secrets
  assert seen.BUILD_URL == 'https://jenkins.example/job/app/42/'
  assert seen.JOB_NAME == 'app' && seen.BUILD_NUMBER == '42'
  assert h.callsTo('withCredentials')[0].args == [
    [kind: 'usernamePassword', credentialsId: 'reg', usernameVariable: 'REGISTRY_USERNAME',
     passwordVariable: 'REGISTRY_PASSWORD'],
    [kind: 'string', credentialsId: 'hook', variable: 'SLACK_WEBHOOK_URL'],
  ]

  assert h.files['registry-prune-console.log'] == h.currentBuild.run.log.join('\n') + '\n'
  assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'registry-prune-report.json', allowEmptyArchive: true]]
  assert h.currentBuild.currentResult == 'SUCCESS'
  assert h.currentBuild.description == 'registry-prune: push recovered; deleted 2 tag(s)'
  assert result.status == 0 && result.report.outcome == 'recovered'
  assert h.callsTo('error').isEmpty() && h.callsTo('unstable').isEmpty()
}

test('no install settings: the tool on the PATH is checked first, outside the lock, and run') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE)
  Map check = h.callsTo('sh')[0]
  assert check.args == [script: 'command -v registry-prune >/dev/null 2>&1', returnStatus: true]
  assert check.context == []
  assert h.shScripts().size() == 2
  assert h.shScripts()[1].readLines()[1].startsWith('registry-prune recover --registry http://127.0.0.1:5000 ')
}

test('acceptance: without the tool and without install settings, one line says which of the three ways to choose') {
  def h = new Harness()
  // The agent's real sh, with a PATH that has no registry-prune, as on a fresh machine.
  h.onSh = { String script, Harness hh ->
    Process p = ['/bin/sh', '-c', script].execute(['PATH=/usr/bin:/bin'], null)
    p.waitForProcessOutput(new StringBuilder(), new StringBuilder())
    return p.exitValue()
  }
  String message = h.runExpectingError('registryRecover', ACCEPTANCE)
  assert message == "registry-prune: registry-prune is not on this agent's PATH; choose one: install it on the " +
    "agent (or give executable: '/path/to/registry-prune'), installSpec: a wheel, a git URL or NAME==VERSION from " +
    "your own pipIndexUrl, or toolImage: 'registry-prune:TAG' to run it with docker (docs/jenkins.md, Installing)"
  assert !message.contains('\n')
  assert h.shScripts() == ['command -v registry-prune >/dev/null 2>&1']
  assert h.currentBuild.currentResult == 'FAILURE'
}

test('installSpec: installed into the workspace venv first, outside the lock and without credentials') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [installSpec: '/srv/wheels/registry_prune-0.1.0-py3-none-any.whl'])
  Map install = h.callsTo('sh')[0]
  assert install.args.script == "python3 -m venv ${VENV} && ${VENV}/bin/pip install --quiet " +
    "--disable-pip-version-check /srv/wheels/registry_prune-0.1.0-py3-none-any.whl && ${VENV}/bin/registry-prune --version"
  assert install.args.returnStatus == true
  assert install.context == []
  assert h.callsTo('sh').size() == 2
  assert h.shScripts()[1].readLines()[1].startsWith("${VENV}/bin/registry-prune recover ")
}

test('installSpec: a bare package name needs the team\'s own index, never the public one') {
  for (String spec in ['registry-prune==0.1.0', 'registry-prune', 'registry_prune[x] >=0.1']) {
    def h = new Harness()
    String message = h.runExpectingError('registryRecover', ACCEPTANCE + [installSpec: spec])
    assert message.startsWith("registry-prune: installSpec ${spec} is a package name")
    assert h.callsTo('sh').isEmpty()
  }
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [installSpec: 'registry-prune==0.1.0', pipIndexUrl: 'https://pypi.corp/simple'])
  assert h.shScripts()[0].contains(' --index-url https://pypi.corp/simple registry-prune==0.1.0 && ')
  for (String spec in ['git+https://git.corp/registry-prune.git@0f3c2a1', './dist/registry_prune-0.1.0-py3-none-any.whl',
                       'https://files.corp/registry_prune-0.1.0-py3-none-any.whl']) {
    h = new Harness()
    h.run('registryRecover', ACCEPTANCE + [installSpec: spec])
    assert h.shScripts()[0].contains(" --disable-pip-version-check ${spec} && ")
  }
}

test('toolImage: the exact docker run, secrets passed by name only, and the report and undo log archived') {
  def h = new Harness()
  Map report = RECOVERED + [audit_log: 'registry-prune-audit/20260101T000000Z-abc.jsonl']
  h.exitWith([' recover ': 0], report)
  h.run('registryRecover', ACCEPTANCE + [toolImage: 'registry-prune:0.1.0'])
  assert h.shScripts()[0] == 'command -v docker >/dev/null 2>&1'
  String run = recoverScripts(h)[0].readLines()[1]
  assert run == 'mkdir -p /tmp/registry-prune-locks && docker run --rm --network host --user "$(id -u):$(id -g)" ' +
    '-v "$PWD:$PWD" -w "$PWD" -v /tmp/registry-prune-locks:/tmp/registry-prune-locks ' +
    '-e REGISTRY_PRUNE_LOCK_DIR=/tmp/registry-prune-locks ${SSH_AUTH_SOCK:+-v "$SSH_AUTH_SOCK:$SSH_AUTH_SOCK" -e SSH_AUTH_SOCK} ' +
    '-e REGISTRY_USERNAME -e REGISTRY_PASSWORD -e SLACK_WEBHOOK_URL -e BUILD_URL -e JOB_NAME -e BUILD_NUMBER ' +
    'registry-prune:0.1.0 recover --registry http://127.0.0.1:5000 --repo team/app ' +
    "--push-cmd 'docker push reg/team/app:1.0.0-alpha.3' --console-log registry-prune-console.log " +
    '--audit-dir registry-prune-audit --json registry-prune-report.json'
  h.assertNoSecretLeaked()
  Map call = h.callsTo('sh').find { it.args.script.contains(' recover ') }
  assert call.context[1] == 'withCredentials:REGISTRY_PASSWORD,REGISTRY_USERNAME,SLACK_WEBHOOK_URL'
  // What sh makes of it: the secrets' names, never their values.
  List<String> words = argv(run.split(' && ', 2)[1].replace('$(id -u):$(id -g)', '0:0').replace('${SSH_AUTH_SOCK:+-v "$SSH_AUTH_SOCK:$SSH_AUTH_SOCK" -e SSH_AUTH_SOCK}', ''))
  assert words.findAll { it.startsWith('REGISTRY_PASSWORD') } == ['REGISTRY_PASSWORD']
  assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'registry-prune-report.json,' +
    'registry-prune-audit/20260101T000000Z-abc.jsonl', allowEmptyArchive: true]]
}

test('toolImage: dockerArgs are added, quoted, before the image; without docker the step says so; not with installSpec') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [toolImage: 'reg/tools/registry-prune:0.1.0',
                                        dockerArgs: ['-v', '/var/run/docker.sock:/var/run/docker.sock', '--add-host', 'a b']])
  assert recoverScripts(h)[0].contains(" -e BUILD_NUMBER -v /var/run/docker.sock:/var/run/docker.sock --add-host 'a b' " +
    'reg/tools/registry-prune:0.1.0 recover ')
  h = new Harness()
  h.exitWith(['command -v docker': 1])
  assert h.runExpectingError('registryRecover', ACCEPTANCE + [toolImage: 'registry-prune:0.1.0']) ==
    'registry-prune: toolImage registry-prune:0.1.0 needs the docker CLI on this agent, and it is not on the PATH'
  h = new Harness()
  assert h.runExpectingError('registryRecover', ACCEPTANCE + [toolImage: 'x', installSpec: './x.whl']) ==
    'registry-prune: give toolImage or installSpec, not both'
  assert h.callsTo('sh').isEmpty()
}

test('the undo log named by the report is archived with it, as a workspace path') {
  def h = new Harness()
  h.exitWith([' recover ': 0], RECOVERED + [audit_log: '/var/jenkins/workspace/app/registry-prune-audit/x.jsonl'])
  h.run('registryRecover', ACCEPTANCE)
  assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'registry-prune-report.json,registry-prune-audit/x.jsonl',
                                                 allowEmptyArchive: true]]
  h = new Harness()
  h.exitWith([' recover ': 0], RECOVERED + [audit_log: '/home/elsewhere/x.jsonl'])
  h.run('registryRecover', ACCEPTANCE)
  assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'registry-prune-report.json', allowEmptyArchive: true]]
}

test('exit codes map onto build results') {
  Map expected = [0: 'SUCCESS', 10: 'UNSTABLE', 11: 'FAILURE', 1: 'FAILURE', 2: 'FAILURE', 3: 'FAILURE',
                  4: 'FAILURE', 5: 'FAILURE', 6: 'FAILURE', 12: 'FAILURE', 127: 'FAILURE', 130: 'FAILURE']
  expected.each { int code, String buildResult ->
    def h = new Harness()
    h.exitWith([' recover ': code])
    String failure = null
    try {
      h.run('registryRecover', ACCEPTANCE)
    } catch (StepError e) {
      failure = e.message
    }
    assert [code, h.currentBuild.currentResult] == [code, buildResult]
    assert [code, failure != null] == [code, buildResult == 'FAILURE']
    assert h.callsTo('archiveArtifacts').size() == 1: "exit ${code}: the report must be archived before the result is set"
    assert h.currentBuild.description.startsWith('registry-prune')
    assert !h.currentBuild.description.contains('\n')
  }
}

test('exit 10, pruning cannot help: UNSTABLE with the reason from the report') {
  def h = new Harness()
  Map classification = [category: 'agent-disk-full', explanation: "the build agent's own disk is full"]
  h.exitWith([' recover ': 10], [outcome: 'cannot-help', exit_code: 10, classification: classification,
                                 message: "agent-disk-full: the build agent's own disk is full; nothing deleted"])
  Map result = h.run('registryRecover', ACCEPTANCE)
  assert result.status == 10
  assert h.currentBuild.currentResult == 'UNSTABLE'
  assert h.callsTo('unstable')*.args == ['registry-prune: pruning the registry cannot fix this failure: ' +
                                         "agent-disk-full: the build agent's own disk is full; nothing deleted"]
  assert h.currentBuild.description ==
    "registry-prune: pruning cannot help: agent-disk-full: the build agent's own disk is full; nothing deleted"

  h = new Harness()
  h.exitWith([' recover ': 10], [classification: classification])
  h.run('registryRecover', ACCEPTANCE)
  assert h.currentBuild.description == "registry-prune: pruning cannot help: the build agent's own disk is full"
}

test('dry run, exit 0: the description says nothing changed') {
  def h = new Harness()
  h.exitWith([' recover ': 0], RECOVERED + [outcome: 'dry-run', dry_run: true])
  h.run('registryRecover', ACCEPTANCE + [dryRun: true])
  assert recoverScripts(h)[0].endsWith(' --dry-run')
  assert h.currentBuild.description == 'registry-prune (dry run): nothing changed; would delete 2 tag(s)'
}

test('exit 0 without a push (nothing to do, pruned): the description says what happened, not "push recovered"') {
  def h = new Harness()
  h.exitWith([' recover ': 0], [outcome: 'nothing-to-do', exit_code: 0, dry_run: false,
                                message: 'nothing to do: 40.0 GiB free, at least 10% required', summary: [deleted: 0]])
  h.run('registryRecover', ACCEPTANCE)
  assert h.currentBuild.description == 'registry-prune: nothing to do: 40.0 GiB free, at least 10% required'
  h = new Harness()
  h.exitWith([' recover ': 0], [outcome: 'pruned', exit_code: 0, message: 'deleted 3 tags', summary: [deleted: 3]])
  h.run('registryRecover', ACCEPTANCE)
  assert h.currentBuild.description == 'registry-prune: deleted 3 tags'
}

test('exit 10 without a report: UNSTABLE with the exit code meaning') {
  def h = new Harness()
  h.exitWith([' recover ': 10])
  h.run('registryRecover', ACCEPTANCE)
  assert h.callsTo('unstable')*.args ==
    ['registry-prune: pruning the registry cannot fix this failure: see the classification in the log above']
}

test('exit 11, push still failing: the step fails') {
  def h = new Harness()
  h.exitWith([' recover ': 11], [errors: [[kind: 'CommandFailedError', message: 'docker push exited 1', exit_code: 11]]])
  String message = h.runExpectingError('registryRecover', ACCEPTANCE)
  assert message == 'registry-prune: the push still fails after recovery (exit 11): docker push exited 1'
  assert h.currentBuild.currentResult == 'FAILURE'
  assert h.currentBuild.description == 'registry-prune: push still failing after recovery'
}

test('other errors fail the step with the exit code meaning') {
  def h = new Harness()
  h.exitWith([' recover ': 4])
  assert h.runExpectingError('registryRecover', ACCEPTANCE) ==
    'registry-prune recover failed (exit 4): registry unreachable, TLS, authentication or protocol error'
  assert h.currentBuild.description ==
    'registry-prune: failed, exit 4: registry unreachable, TLS, authentication or protocol error'
  h = new Harness()
  h.exitWith([' recover ': 3], [errors: [[kind: 'DeleteDisabledError', message: 'DELETE returned 405 Unsupported', exit_code: 3]]])
  assert h.runExpectingError('registryRecover', ACCEPTANCE) == 'registry-prune recover failed (exit 3): ' +
    'the registry refuses deletes (storage.delete.enabled is false, or read-only mode); DELETE returned 405 Unsupported'
}

test('in post { failure } the build stays FAILURE: Jenkins never improves a result') {
  def h = new Harness()
  h.currentBuild.result = 'FAILURE'
  h.exitWith([' recover ': 10])
  h.run('registryRecover', ACCEPTANCE)
  assert h.currentBuild.currentResult == 'FAILURE'
}

test('locking is on by default, off with lock: false, and skipped without the plugin') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE)
  assert h.callsTo('lock')*.args == [[resource: 'registry-prune-http://127.0.0.1:5000']]

  h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [lock: false])
  assert h.callsTo('lock').isEmpty()
  assert recoverScripts(h).size() == 1

  h = new Harness()
  h.lockInstalled = false
  h.run('registryRecover', ACCEPTANCE)
  assert recoverScripts(h).size() == 1
  assert h.callsTo('echo')*.args.any { it.contains('Lockable Resources plugin is not installed') }
}

test('console log: the last consoleLogLines lines of this build') {
  def h = new Harness()
  h.currentBuild.run.log = (1..50).collect { "line ${it}".toString() }
  h.run('registryRecover', ACCEPTANCE + [consoleLogLines: 3, consoleLogFile: 'logs/console.txt'])
  assert h.files['logs/console.txt'] == 'line 48\nline 49\nline 50\n'
  assert recoverScripts(h)[0].contains(' --console-log logs/console.txt ')
}

test('console log: in the sandbox rawBuild is rejected; recover runs without it and says why') {
  def h = new Harness()
  h.currentBuild.sandboxed = true
  h.run('registryRecover', ACCEPTANCE)
  assert !recoverScripts(h)[0].contains('--console-log')
  assert h.callsTo('echo')*.args.any { it.contains('cannot read this build\'s console log (SecurityException') }
  assert h.callsTo('writeFile').isEmpty()
}

test('console log: a given file is passed as is; false passes none') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [consoleLog: 'push output.log'])
  assert recoverScripts(h)[0].contains(" --console-log 'push output.log' ")
  assert h.callsTo('writeFile').isEmpty()

  h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [consoleLog: false])
  assert !recoverScripts(h)[0].contains('--console-log')
}

test('every knob reaches the CLI, and awkward values survive sh word splitting') {
  def h = new Harness()
  h.run('registryRecover', [
    registry: 'https://reg.example:5000/', repositories: ['team/app', 'team/web'], match: '-(alpha|beta)\\.',
    exclude: '-keep$', keep: 5, protect: ['^latest$', '^it\'s$'], order: 'created', olderThan: '14d', minKeep: 2,
    caBundle: '/etc/ssl/reg ca.pem', slackTokenCredentialsId: 'bot', channel: '#ci alerts',
    pushCommand: 'docker push "$IMAGE" && echo pushed', gcCommand: "ssh reg 'registry garbage-collect /etc/r.yml'",
    restartCommand: 'ssh reg docker restart registry', readonlyCommand: 'ssh reg enable-readonly',
    stopCommand: 'ssh reg docker stop registry', startCommand: 'ssh reg docker start registry', allowLiveGc: true,
    disk: 'command:ssh reg df -PB1 /var/lib/registry', minFree: '10%', reportFile: 'out/report.json', dryRun: true, force: true,
    auditDir: 'undo logs',
  ])
  List<String> lines = recoverScripts(h)[0].readLines()
  assert lines[0] == 'rm -f out/report.json'
  assert argv(lines[1]) == [
    'registry-prune', 'recover', '--registry', 'https://reg.example:5000/', '--repo', 'team/app', '--repo', 'team/web',
    '--match', '-(alpha|beta)\\.', '--exclude', '-keep$', '--keep', '5', '--protect', '^latest$', '--protect', '^it\'s$',
    '--order', 'created', '--older-than', '14d', '--ca-bundle', '/etc/ssl/reg ca.pem', '--min-keep', '2',
    '--push-cmd', 'docker push "$IMAGE" && echo pushed', '--gc-cmd', "ssh reg 'registry garbage-collect /etc/r.yml'",
    '--readonly-cmd', 'ssh reg enable-readonly', '--restart-cmd', 'ssh reg docker restart registry',
    '--stop-cmd', 'ssh reg docker stop registry', '--start-cmd', 'ssh reg docker start registry', '--allow-live-gc',
    '--disk', 'command:ssh reg df -PB1 /var/lib/registry', '--min-free', '10%', '--console-log', 'registry-prune-console.log',
    '--audit-dir', 'undo logs', '--json', 'out/report.json', '--slack-channel', '#ci alerts', '--dry-run', '--force',
  ]
  assert h.callsTo('lock')*.args == [[resource: 'registry-prune-https://reg.example:5000']]
  assert h.callsTo('withCredentials')[0].args == [[kind: 'string', credentialsId: 'bot', variable: 'SLACK_BOT_TOKEN']]
  assert h.callsTo('archiveArtifacts')*.args == [[artifacts: 'out/report.json', allowEmptyArchive: true]]
  h.assertNoSecretLeaked()
}

test('image is shell-quoted inside the push command') {
  def h = new Harness()
  h.run('registryRecover', ACCEPTANCE + [image: 'reg/app:$(id)'])
  assert argv(recoverScripts(h)[0].readLines()[1])[7] == "docker push 'reg/app:\$(id)'"
}

test('anonymous registry, no Slack: no withCredentials at all') {
  def h = new Harness()
  h.run('registryRecover', [registry: 'http://r:5000', repository: 'a', image: 'r:5000/a:1'])
  assert h.callsTo('withCredentials').isEmpty()
  assert recoverScripts(h).size() == 1
}

test('bad configurations stop before anything runs') {
  Map cases = [
    (ACCEPTANCE + [image: null]): 'registryRecover: image (or pushCommand) is required',
    (ACCEPTANCE + [pushCommand: 'docker push x']): 'registryRecover: give image or pushCommand, not both',
    (ACCEPTANCE + [slackTokenCredentialsId: 'bot', channel: '#c']): 'registryRecover: give slackWebhookCredentialsId',
    (ACCEPTANCE + [slackWebhookCredentialsId: null, slackTokenCredentialsId: 'bot']):
      'registryRecover: slackTokenCredentialsId needs channel',
    (ACCEPTANCE + [channel: '#c']): 'registryRecover: channel only applies with slackTokenCredentialsId',
    (ACCEPTANCE + [dryrun: true]): 'registryRecover: unknown parameter(s): dryrun',
    (ACCEPTANCE + [registry: '']): 'registryRecover: registry is required',
  ]
  cases.each { Map config, String prefix ->
    def h = new Harness()
    String message = h.runExpectingError('registryRecover', config)
    assert message.startsWith(prefix)
    assert h.callsTo('sh').isEmpty()
  }
}

test('writes the install command it builds for the locally built wheel, for the end-to-end install test') {
  if (outDir == null) {
    return
  }
  File workspace = new File(outDir, 'workspace')
  def h = new Harness()
  h.env.WORKSPACE = workspace.path
  def version = new File(root, 'pipeline_step/__init__.py').text =~ /(?m)^__version__ = "([^"]+)"/
  assert version.find()
  String wheel = new File(outDir, "dist/registry_prune-${version.group(1)}-py3-none-any.whl").path
  h.run('registryRecover', ACCEPTANCE + [installSpec: wheel])
  String install = h.shScripts()[0]
  assert install.contains(' install ') && !install.contains(' recover ')
  new File(outDir, 'install-command.sh').text = install + '\n'
}

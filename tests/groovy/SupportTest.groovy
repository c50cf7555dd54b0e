// vars/registryPruneSupport.groovy: quoting, parameter handling, the install command.

/** What /bin/sh makes of a command line: one word per line, via printf. */
List<String> shWords(String words) {
  Process p = ['sh', '-c', "printf '%s\\n' ${words}"].execute()
  String out = p.inputStream.text
  assert p.waitFor() == 0: p.errorStream.text
  return out.readLines()
}

test('shellQuote leaves safe words bare and quotes the rest') {
  def s = new Harness().step('registryPruneSupport')
  assert s.shellQuote('team/app') == 'team/app'
  assert s.shellQuote('http://127.0.0.1:5000') == 'http://127.0.0.1:5000'
  assert s.shellQuote('a b') == "'a b'"
  assert s.shellQuote("it's") == "'it'\"'\"'s'"
  assert s.shellQuote('') == "''"
  assert s.shellQuote(null) == "''"
  assert s.shellQuote('$HOME') == "'\$HOME'"
}

test('shellQuote round-trips awkward values through a real sh') {
  def s = new Harness().step('registryPruneSupport')
  List values = ['plain', 'two words', "it's", "'", "''", 'a"b', '$REGISTRY_PASSWORD', '`id`', '-(alpha|beta)\\.',
                 'x; rm -rf /', 'tab\there', '*', '~', '', 'line\nbreak', '\\']
  for (String v in values) {
    assert shWords(s.shellQuote(v)).join('\n') == v
  }
  assert shWords(s.commandLine(values)).size() == values.size() + 1  // 'line\nbreak' prints as two lines
}

test('commandLine quotes each word') {
  def s = new Harness().step('registryPruneSupport')
  assert s.commandLine(['docker', 'push', 'reg/app:1', "a 'b'"]) == "docker push reg/app:1 'a '\"'\"'b'\"'\"''"
}

test('repository and repositories combine; strings may list several') {
  def s = new Harness().step('registryPruneSupport')
  assert s.repositories([repository: 'team/app']) == ['team/app']
  assert s.repositories([repository: 'team/app, team/web  team/*', repositories: ['team/app', 'x/**']]) ==
    ['team/app', 'team/web', 'team/*', 'x/**']
  assert s.repositories([repository: ['a', 'b']]) == ['a', 'b']
  assert s.repositories([repository: '  ', repositories: []]) == []
}

test('merge refuses unknown parameters, so a typo cannot change what runs') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  Map defaults = [registry: null, repository: null, repositories: [], dryRun: true]
  try {
    s.merge('registryPrune', defaults, [registry: 'http://r', repository: 'a', dryrun: false, olderthan: '1d'])
    assert false: 'merge accepted unknown keys'
  } catch (StepError e) {
    assert e.message == "registryPrune: unknown parameter(s): dryrun, olderthan; see the step's help for the list"
  }
}

test('merge: blank strings mean not given; registry falls back to env.REGISTRY_URL') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  Map defaults = [registry: null, repository: null, repositories: [], match: 'm', keep: null]
  h.env.REGISTRY_URL = 'https://reg.example:5000'
  Map merged = s.merge('registryPrune', defaults, [repository: 'team/app', match: '', keep: ' '])
  assert merged == [registry: 'https://reg.example:5000', repository: 'team/app', repositories: [], match: null, keep: null]
  h.env.remove('REGISTRY_URL')
  try {
    s.merge('registryPrune', defaults, [repository: 'team/app'])
    assert false: 'merge accepted a missing registry'
  } catch (StepError e) {
    assert e.message.startsWith('registryPrune: registry is required')
  }
  try {
    s.merge('registryPrune', defaults, [registry: 'http://r', repository: ' '])
    assert false: 'merge accepted a missing repository'
  } catch (StepError e) {
    assert e.message.startsWith('registryPrune: repository is required')
  }
}

test('policy flags use the CLI spelling, repeat --repo and --protect, and skip unset knobs') {
  def s = new Harness().step('registryPruneSupport')
  Map cfg = s.commonDefaults() + [registry: 'http://r:5000', repository: 'a, b', match: '-alpha\\.', keep: 3,
                                  protect: ['^keep-', '^v1'], order: 'created', olderThan: '14d']
  assert s.policyArgs(cfg) == ['--registry', 'http://r:5000', '--repo', 'a', '--repo', 'b', '--match', '-alpha\\.',
                               '--keep', '3', '--protect', '^keep-', '--protect', '^v1', '--order', 'created',
                               '--older-than', '14d']
  assert s.policyArgs(s.commonDefaults() + [registry: 'http://r', repository: 'a', protect: 'x', keep: 0]) ==
    ['--registry', 'http://r', '--repo', 'a', '--keep', '0', '--protect', 'x']
}

test('no default installs anything: no installSpec, no image, no index') {
  def s = new Harness().step('registryPruneSupport')
  Map install = s.installDefaults()
  assert install.installSpec == null && install.toolImage == null && install.pipIndexUrl == null
  assert install.executable == 'registry-prune'
  assert (install.keySet() - s.commonDefaults().keySet()).isEmpty()
}

test('install command: venv in the workspace, the given spec, optional index, all quoted') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  Map cfg = s.commonDefaults() + [installSpec: '/srv/dist/registry_prune-0.1.0-py3-none-any.whl']
  assert s.installCommand(cfg) ==
    'python3 -m venv /var/jenkins/workspace/app/.registry-prune-venv && ' +
    '/var/jenkins/workspace/app/.registry-prune-venv/bin/pip install --quiet --disable-pip-version-check ' +
    '/srv/dist/registry_prune-0.1.0-py3-none-any.whl && /var/jenkins/workspace/app/.registry-prune-venv/bin/registry-prune --version'
  h.env.WORKSPACE = '/ws/my job'
  cfg += [installSpec: 'registry-prune==0.1.0', pipIndexUrl: 'https://pypi.example/simple']
  assert s.installCommand(cfg) ==
    "python3 -m venv '/ws/my job/.registry-prune-venv' && " +
    "'/ws/my job/.registry-prune-venv/bin/pip' install --quiet --disable-pip-version-check " +
    '--index-url https://pypi.example/simple registry-prune==0.1.0 && ' +
    "'/ws/my job/.registry-prune-venv/bin/registry-prune' --version"
}

test('a failed install stops the step with a hint') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  h.exitWith(['-m venv': 1])
  try {
    s.tool(s.commonDefaults() + [installSpec: 'git+https://git.example/registry-prune.git@v1'])
    assert false: 'tool() ignored a failed install'
  } catch (StepError e) {
    assert e.message.contains('could not install git+https://git.example/registry-prune.git@v1')
    assert e.message.contains('python3-venv')
  }
}

test('the executable on the PATH, or a path, is checked and used; nothing is installed') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  assert s.tool(s.commonDefaults()) == 'registry-prune'
  assert s.tool(s.commonDefaults() + [executable: '/opt/rp bin/registry-prune']) == "'/opt/rp bin/registry-prune'"
  assert h.shScripts() == ['command -v registry-prune >/dev/null 2>&1',
                           "command -v '/opt/rp bin/registry-prune' >/dev/null 2>&1"]
}

test('isPackageName tells names from paths and URLs') {
  def s = new Harness().step('registryPruneSupport')
  for (String name in ['registry-prune', 'registry-prune==0.1.0', 'registry_prune>=0.1,<1', 'registry-prune[x]==1']) {
    assert [name, s.isPackageName(name)] == [name, true]
  }
  for (String other in ['./registry_prune-0.1.0-py3-none-any.whl', '/srv/x.whl', 'git+https://g/r.git@v1',
                        'https://f/x.whl', 'registry-prune @ https://f/x.whl', '.']) {
    assert [other, s.isPackageName(other)] == [other, false]
  }
}

test('lock resource is per registry, ignoring a trailing slash') {
  def s = new Harness().step('registryPruneSupport')
  assert s.lockResource([registry: 'https://reg.example:5000/']) == 'registry-prune-https://reg.example:5000'
  assert s.lockResource([registry: 'http://127.0.0.1:5000']) == 'registry-prune-http://127.0.0.1:5000'
}

test('without Lockable Resources the body runs once, unlocked, with a note') {
  def h = new Harness()
  h.lockInstalled = false
  def s = h.step('registryPruneSupport')
  int runs = 0
  s.withRegistryLock([registry: 'http://r', lock: true]) { runs++ }
  assert runs == 1
  assert h.callsTo('echo')*.args.any { it.contains('Lockable Resources plugin is not installed') }
}

test('a NoSuchMethodError from inside the locked body is not mistaken for a missing plugin') {
  def h = new Harness()
  def s = h.step('registryPruneSupport')
  int runs = 0
  try {
    s.withRegistryLock([registry: 'http://r', lock: true]) {
      runs++
      throw new NoSuchMethodError("No such DSL method 'fancyStep'")
    }
    assert false: 'the error was swallowed'
  } catch (NoSuchMethodError e) {
    assert e.message.contains('fancyStep')
  }
  assert runs == 1
}

test('exit meanings cover every CLI exit code') {
  def s = new Harness().step('registryPruneSupport')
  for (int code in [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 130]) {
    assert s.exitMeanings().containsKey(code)
  }
  assert s.exitMeaning(99) == 'unknown exit code'
}

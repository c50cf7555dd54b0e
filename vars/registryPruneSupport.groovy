// Internals shared by registryRecover and registryPrune (not a step of its own).
// It lives in vars/ so the library needs no src/ tree; the steps call it as
// registryPruneSupport.method(...).
//
// Written for the CPS interpreter: plain loops, no closures over collections,
// nothing non-serializable kept in a local across a step call.

import groovy.json.JsonSlurperClassic

/** How each step obtains the tool; every step accepts these. No default installs anything. */
Map installDefaults() {
  return [
    executable: 'registry-prune', // on the agent's PATH, or a path to it
    installSpec: null,            // pip requirement: a wheel path or URL, a git URL, or NAME==VERSION with pipIndexUrl
    pipIndexUrl: null,            // the team's own index, the only one pip then asks
    python: 'python3',
    venvDir: null,                // null: $WORKSPACE/.registry-prune-venv
    toolImage: null,              // e.g. 'registry-prune:0.1.0': run the tool with docker run
    dockerArgs: [],               // extra docker run arguments, with toolImage
  ]
}

/** Parameters registryRecover and registryPrune accept; each step adds its own on top. */
Map commonDefaults() {
  return [
    registry: null,            // falls back to env.REGISTRY_URL
    repository: null,          // a name or glob, a list, or "a, b" / "a b"
    repositories: [],
    match: null,               // null: the CLI default, any semver pre-release
    exclude: null,
    keep: null,                // null: the CLI default, 10
    protect: [],
    order: null,               // semver (CLI default) or created
    olderThan: null,
    credentialsId: null,       // Username with password; null: anonymous registry
    caBundle: null,
    reportFile: 'registry-prune-report.json',
    auditDir: 'registry-prune-audit',  // the undo log, in the workspace; archived with the report
    lock: true,
  ] + installDefaults()
}

/** What each CLI exit code means: pipeline_step/errors.py EXIT_CODES (a test keeps them equal), plus the shell's 126 and 127. */
Map exitMeanings() {
  return [
    0: 'success',
    1: 'unexpected internal error (a bug: rerun with --debug and report it)',
    2: 'bad flags, configuration or input; nothing was changed',
    3: 'the registry refuses deletes (storage.delete.enabled is false, or read-only mode)',
    4: 'registry unreachable, TLS, authentication or protocol error',
    5: 'partial: some planned deletions failed, or a repository was left alone because one of its tags could not be resolved; for restore, some images could not be restored. The report lists which',
    6: 'another run holds the registry lock',
    7: 'the undo log could not be written (is this agent\'s disk full?): the run stopped before its next deletion; the report lists what was deleted',
    8: 'usage --upgrade-check: schema1 manifests remain, which registry 3.x cannot read; the report lists them',
    10: 'pruning the registry cannot fix this failure',
    11: 'the push still fails after recovery',
    12: 'garbage collection or the restart command failed',
    130: 'interrupted by SIGINT/SIGTERM; the partial report was written',
    126: 'registry-prune is not executable',
    127: 'registry-prune was not found (see docs/jenkins.md, Installing)',
  ]
}

String exitMeaning(int status) {
  String meaning = exitMeanings()[status]
  return meaning ?: 'unknown exit code'
}

/**
 * config over defaults; unknown keys are refused, since a typo such as dryrun must not change what runs.
 * A registry is always required; a repository only when the step prunes (needsRepository).
 */
Map merge(String step, Map defaults, Map config, boolean needsRepository = true) {
  List unknown = []
  for (Object key in config.keySet()) {
    if (!defaults.containsKey(key)) {
      unknown.add(key.toString())
    }
  }
  if (unknown) {
    error("${step}: unknown parameter(s): ${unknown.sort().join(', ')}; see the step's help for the list")
  }
  Map merged = [:]
  merged.putAll(defaults)
  for (Object key in config.keySet()) {
    Object value = config[key]
    // Blank string parameters from the UI mean "not given".
    merged[key] = (value instanceof CharSequence && value.toString().trim().isEmpty()) ? null : value
  }
  if (!merged.registry && env.REGISTRY_URL) {
    merged.registry = env.REGISTRY_URL.toString()
  }
  if (!merged.registry) {
    error("${step}: registry is required (a URL such as https://registry.example:5000, or set env.REGISTRY_URL)")
  }
  if (needsRepository && !repositories(merged)) {
    error("${step}: repository is required (a name or glob such as team/app)")
  }
  return merged
}

/** A string, a list, or null as a list of non-blank strings. */
List asList(Object value) {
  List result = []
  if (value == null) {
    return result
  }
  List items = (value instanceof Collection || value instanceof Object[]) ? (value as List) : [value]
  for (Object item in items) {
    if (item != null && !item.toString().trim().isEmpty()) {
      result.add(item.toString().trim())
    }
  }
  return result
}

/** repository and repositories together; strings may list several, separated by commas or spaces. */
List repositories(Map config) {
  List result = []
  List given = asList(config.repository) + asList(config.repositories)
  for (Object item in given) {
    for (String name in item.toString().split(/[,\s]+/)) {
      if (name && !result.contains(name)) {
        result.add(name)
      }
    }
  }
  return result
}

/** One word for sh, like Python's shlex.quote: safe words stay bare, others go in single quotes. */
String shellQuote(Object value) {
  String text = value == null ? '' : value.toString()
  if (text ==~ /[A-Za-z0-9@%+=:,.\/_-]+/) {
    return text
  }
  return "'" + text.replace("'", "'\"'\"'") + "'"
}

String commandLine(List words) {
  List quoted = []
  for (Object word in words) {
    quoted.add(shellQuote(word))
  }
  return quoted.join(' ')
}

/** --registry, --repo and the policy flags, in the CLI's spelling. */
List policyArgs(Map config) {
  List args = ['--registry', config.registry]
  for (String repo in repositories(config)) {
    args.addAll(['--repo', repo])
  }
  addOption(args, '--match', config.match)
  addOption(args, '--exclude', config.exclude)
  addOption(args, '--keep', config.keep)
  for (String pattern in asList(config.protect)) {
    args.addAll(['--protect', pattern])
  }
  addOption(args, '--order', config.order)
  addOption(args, '--older-than', config.olderThan)
  addOption(args, '--ca-bundle', config.caBundle)
  return args
}

void addOption(List args, String flag, Object value) {
  if (value != null && !value.toString().isEmpty()) {
    args.addAll([flag, value.toString()])
  }
}

String venvDir(Map config) {
  if (config.venvDir) {
    return config.venvDir.toString()
  }
  return env.WORKSPACE ? "${env.WORKSPACE}/.registry-prune-venv".toString() : '.registry-prune-venv'
}

/** The shell command that puts installSpec into a venv; runnable on its own in any folder. */
String installCommand(Map config) {
  String venv = venvDir(config)
  List pip = ["${venv}/bin/pip", 'install', '--quiet', '--disable-pip-version-check']
  if (config.pipIndexUrl) {
    pip.addAll(['--index-url', config.pipIndexUrl])
  }
  pip.add(config.installSpec)
  return [
    commandLine([config.python, '-m', 'venv', venv]),
    commandLine(pip),
    commandLine(["${venv}/bin/registry-prune", '--version']),
  ].join(' && ')
}

/** A bare requirement (name, extras, version) with no path or URL in it: pip would resolve it on an index. */
boolean isPackageName(Object spec) {
  String text = spec.toString().trim()
  return text ==~ /[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*([<>=!~]=?[^\/:@]*)?/
}

/** The one line a step fails with when it cannot find the tool: the three ways to get it. */
String notFoundMessage(Object executable) {
  return "registry-prune: ${executable} is not on this agent's PATH; choose one: install it on the agent " +
    "(or give executable: '/path/to/registry-prune'), installSpec: a wheel, a git URL or NAME==VERSION from your " +
    "own pipIndexUrl, or toolImage: 'registry-prune:TAG' to run it with docker (docs/jenkins.md, Installing)"
}

/** The lock directory a containerized run shares with the agent, so its CLI lock is per agent too. */
String containerLockDir() {
  return '/tmp/registry-prune-locks'
}

/**
 * docker run of toolImage: the workspace mounted at the same path and made the working directory,
 * the agent's user, host networking (the registry is reached as the agent reaches it), an ssh-agent
 * socket when sshagent {} provides one, and the variables named by -e NAME without a value, so
 * docker copies them from the environment and no secret is ever on the command line.
 */
String dockerCommand(Map config) {
  String lockDir = containerLockDir()
  List words = ['docker', 'run', '--rm', '--network', 'host']
  String line = commandLine(['mkdir', '-p', lockDir]) + ' && ' + commandLine(words) +
    ' --user "$(id -u):$(id -g)" -v "$PWD:$PWD" -w "$PWD" ' +
    commandLine(['-v', "${lockDir}:${lockDir}", '-e', "REGISTRY_PRUNE_LOCK_DIR=${lockDir}"]) +
    ' ${SSH_AUTH_SOCK:+-v "$SSH_AUTH_SOCK:$SSH_AUTH_SOCK" -e SSH_AUTH_SOCK}'
  List passed = []
  for (String name in environmentNames(config)) {
    passed.addAll(['-e', name])
  }
  passed.addAll(asList(config.dockerArgs))
  passed.add(config.toolImage)
  return line + ' ' + commandLine(passed)
}

/**
 * The shell words that start the tool, after making sure it is there: toolImage runs it with
 * docker, installSpec installs it into a venv, otherwise executable must be on the PATH.
 */
String tool(Map config) {
  if (config.toolImage && config.installSpec) {
    error('registry-prune: give toolImage or installSpec, not both')
  }
  if (config.toolImage) {
    if (sh(script: 'command -v docker >/dev/null 2>&1', returnStatus: true) != 0) {
      error("registry-prune: toolImage ${config.toolImage} needs the docker CLI on this agent, and it is not on the PATH")
    }
    return dockerCommand(config)
  }
  if (config.installSpec) {
    if (!config.pipIndexUrl && isPackageName(config.installSpec)) {
      error("registry-prune: installSpec ${config.installSpec} is a package name, which pip would look up on the " +
        'public index, where registry-prune is not published and anyone could claim it; give pipIndexUrl (your ' +
        'own index), or a wheel path or git URL')
    }
    int status = sh(script: installCommand(config), returnStatus: true)
    if (status != 0) {
      error("registry-prune: could not install ${config.installSpec} into ${venvDir(config)} (exit ${status}); " +
        'the agent needs python3 (3.10 or later) with venv (Debian: python3-venv) and access to that wheel, URL or index')
    }
    return shellQuote("${venvDir(config)}/bin/registry-prune")
  }
  String executable = config.executable.toString()
  if (sh(script: "command -v ${shellQuote(executable)} >/dev/null 2>&1", returnStatus: true) != 0) {
    error(notFoundMessage(executable))
  }
  return shellQuote(executable)
}

/** The whole command line: the tool (as tool() returned it) and its quoted arguments. */
String toolCommand(String tool, List args) {
  return "${tool} ${commandLine(args)}".toString()
}

/** withCredentials bindings; the CLI reads these variables itself, so no secret is ever on a command line. */
List credentialBindings(Map config) {
  List bindings = []
  if (config.credentialsId) {
    bindings.add(usernamePassword(credentialsId: config.credentialsId,
      usernameVariable: 'REGISTRY_USERNAME', passwordVariable: 'REGISTRY_PASSWORD'))
  }
  if (config.slackWebhookCredentialsId) {
    bindings.add(string(credentialsId: config.slackWebhookCredentialsId, variable: 'SLACK_WEBHOOK_URL'))
  }
  if (config.slackTokenCredentialsId) {
    bindings.add(string(credentialsId: config.slackTokenCredentialsId, variable: 'SLACK_BOT_TOKEN'))
  }
  return bindings
}

/** The variables the tool reads from its environment, as bound for this config. */
List environmentNames(Map config) {
  List names = []
  if (config.credentialsId) {
    names.addAll(['REGISTRY_USERNAME', 'REGISTRY_PASSWORD'])
  }
  if (config.slackWebhookCredentialsId) {
    names.add('SLACK_WEBHOOK_URL')
  }
  if (config.slackTokenCredentialsId) {
    names.add('SLACK_BOT_TOKEN')
  }
  names.addAll(['BUILD_URL', 'JOB_NAME', 'BUILD_NUMBER'])
  return names
}

/** The Slack parameters make sense together: a webhook, or a bot token with a channel. */
void checkSlack(String step, Map cfg) {
  if (cfg.slackWebhookCredentialsId && cfg.slackTokenCredentialsId) {
    error("${step}: give slackWebhookCredentialsId or slackTokenCredentialsId, not both")
  }
  if (cfg.slackTokenCredentialsId && !cfg.channel) {
    error("${step}: slackTokenCredentialsId needs channel (e.g. #ci-alerts)")
  }
  if (cfg.channel && !cfg.slackTokenCredentialsId) {
    error("${step}: channel only applies with slackTokenCredentialsId (a webhook posts to its own channel)")
  }
}

/** BUILD_URL, JOB_NAME and BUILD_NUMBER for the report and Slack, passed on explicitly. */
List jenkinsContext() {
  List vars = []
  for (String name in ['BUILD_URL', 'JOB_NAME', 'BUILD_NUMBER']) {
    Object value = env[name]
    if (value) {
      vars.add("${name}=${value}".toString())
    }
  }
  return vars
}

String lockResource(Map config) {
  return "registry-prune-${config.registry.toString().replaceAll('/+$', '')}".toString()
}

/**
 * Runs body under lock(resource: registry-prune-<registry>) so runs against one
 * registry never overlap. Without Lockable Resources the step is missing and
 * Jenkins throws NoSuchMethodError before the body starts: then run unlocked.
 */
void withRegistryLock(Map config, Closure body) {
  if (!config.lock) {
    body()
    return
  }
  String resource = lockResource(config)
  boolean entered = false
  try {
    lock(resource: resource) {
      entered = true
      body()
    }
  } catch (NoSuchMethodError e) {
    if (entered) {
      throw e
    }
    echo "registry-prune: the Lockable Resources plugin is not installed; running without lock(${resource})"
    body()
  }
}

/**
 * Runs the tool under the lock, with the credentials and the Jenkins context in its
 * environment, and returns its exit code. The script is built from quoted
 * non-secret values only; secrets stay in environment variables.
 */
int runTool(Map config, String commandLine) {
  // A report left by an earlier build must not be read as this run's.
  String script = "rm -f ${shellQuote(config.reportFile)}\n${commandLine}"
  List bindings = credentialBindings(config)
  int status = -1
  Closure invoke = {
    withEnv(jenkinsContext()) {
      status = sh(script: script, returnStatus: true)
    }
  }
  withRegistryLock(config) {
    if (bindings) {
      withCredentials(bindings, invoke)
    } else {
      invoke()
    }
  }
  return status
}

/**
 * Reads the JSON report (if the tool got as far as writing it), then archives it together with the
 * undo log it names (audit_log), so restore can run from the build's artifacts. Returns it parsed, or null.
 */
Map collectReport(Map config) {
  String file = config.reportFile.toString()
  Map report = null
  if (fileExists(file)) {
    try {
      Object parsed = new JsonSlurperClassic().parseText(readFile(file: file))
      report = parsed instanceof Map ? (Map) parsed : null
    } catch (Exception e) {
      echo "registry-prune: cannot parse ${file}: ${e.message}"
    }
  }
  List artifacts = [file]
  String auditLog = workspacePath(report?.audit_log)
  if (auditLog) {
    artifacts.add(auditLog)
  }
  archiveArtifacts(artifacts: artifacts.join(','), allowEmptyArchive: true)
  return report
}

/** A path the report gave, relative to the workspace (archiveArtifacts takes only those), or null. */
String workspacePath(Object path) {
  if (!path) {
    return null
  }
  String text = path.toString()
  String workspace = env.WORKSPACE ? env.WORKSPACE.toString().replaceAll('/+$', '') + '/' : null
  if (workspace && text.startsWith(workspace)) {
    return text.substring(workspace.length())
  }
  return text.startsWith('/') ? null : text
}

/** How many tags a report says were (or, in a dry run, would be) deleted: summary.deleted; null if unknown. */
Object deletedCount(Map report) {
  if (report != null && report.summary instanceof Map && report.summary.deleted != null) {
    return report.summary.deleted
  }
  return null
}

/** The explanation a report gives: its message, the classification, or the first error; null if none. */
String reportReason(Map report) {
  if (report == null) {
    return null
  }
  Map classification = report.classification instanceof Map ? (Map) report.classification : [:]
  List errors = report.errors instanceof List ? (List) report.errors : []
  Object firstError = errors ? (errors[0] instanceof Map ? errors[0].message : errors[0]) : null
  for (Object text in [report.message, classification.explanation, classification.category, firstError]) {
    if (text) {
      return text.toString()
    }
  }
  return null
}

/** currentBuild.description: one line, so it fits the build history. */
void describe(String line) {
  currentBuild.description = line.replaceAll(/\s+/, ' ').trim()
}

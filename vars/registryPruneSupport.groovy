// Internals shared by registryRecover and registryPrune (not a step of its own).
// It lives in vars/ so the library needs no src/ tree; the steps call it as
// registryPruneSupport.method(...).
//
// Written for the CPS interpreter: plain loops, no closures over collections,
// nothing non-serializable kept in a local across a step call.

import groovy.json.JsonSlurperClassic

/** The tool version this library release is tested with (pipeline_step/__init__.py). */
String pinnedVersion() {
  return '0.1.0'
}

/** Parameters both steps accept; each step adds its own on top. */
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
    lock: true,
    install: true,
    installSpec: "registry-prune==${pinnedVersion()}".toString(),
    pipIndexUrl: null,
    python: 'python3',
    venvDir: null,             // null: $WORKSPACE/.registry-prune-venv
    executable: 'registry-prune',
  ]
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
    127: 'registry-prune was not found (leave install: true, or put it on PATH)',
  ]
}

String exitMeaning(int status) {
  String meaning = exitMeanings()[status]
  return meaning ?: 'unknown exit code'
}

/** config over defaults; unknown keys are refused, since a typo such as dryrun must not change what runs. */
Map merge(String step, Map defaults, Map config) {
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
  if (!repositories(merged)) {
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

/** The shell command that puts the pinned tool into a venv; runnable on its own in any folder. */
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

/** The registry-prune executable to run, installing it first unless install is false. */
String tool(Map config) {
  if (!config.install) {
    return config.executable.toString()
  }
  int status = sh(script: installCommand(config), returnStatus: true)
  if (status != 0) {
    error("registry-prune: could not install ${config.installSpec} into ${venvDir(config)} (exit ${status}); " +
      'the agent needs python3 with venv (Debian: python3-venv) and access to the package index')
  }
  return "${venvDir(config)}/bin/registry-prune".toString()
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

/** Archives the JSON report (if the tool got as far as writing it) and returns it parsed, or null. */
Map collectReport(Map config) {
  String file = config.reportFile.toString()
  archiveArtifacts(artifacts: file, allowEmptyArchive: true)
  if (!fileExists(file)) {
    return null
  }
  try {
    Object parsed = new JsonSlurperClassic().parseText(readFile(file: file))
    return parsed instanceof Map ? (Map) parsed : null
  } catch (Exception e) {
    echo "registry-prune: cannot parse ${file}: ${e.message}"
    return null
  }
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

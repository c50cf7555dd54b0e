// registryRecover: after a failed `docker push`, run `registry-prune recover`:
// classify the failure from the console log, prune old pre-release tags, run
// garbage collection, restart the registry, retry the push and report to Slack.
// Parameters, defaults and examples: registryRecover.txt.

Map defaults() {
  return registryPruneSupport.commonDefaults() + [
    minKeep: null,
    slackWebhookCredentialsId: null,   // Secret text: incoming-webhook URL
    slackTokenCredentialsId: null,     // Secret text: bot token, needs channel
    channel: null,
    image: null,                       // pushCommand defaults to `docker push IMAGE`
    pushCommand: null,
    gcCommand: null,                   // GC runs only behind a guard: readonly + restart, or stop + start
    restartCommand: null,
    readonlyCommand: null,
    stopCommand: null,
    startCommand: null,
    allowLiveGc: false,                // GC on a registry that accepts pushes: unsafe, say so explicitly
    disk: null,
    minFree: null,
    consoleLog: null,                  // null: this build's log; a path: that file; false: none
    consoleLogLines: 5000,
    consoleLogFile: 'registry-prune-console.log',
    dryRun: false,
    force: false,
  ]
}

def call(Map config = [:]) {
  def support = registryPruneSupport
  Map cfg = support.merge('registryRecover', defaults(), config)
  String push = pushCommand(cfg)
  support.checkSlack('registryRecover', cfg)

  // Read the log before installing, so the push failure is its tail, not pip's output.
  String consoleLog = consoleLogFile(cfg)
  String tool = support.tool(cfg)
  List args = ['recover'] + support.policyArgs(cfg)
  support.addOption(args, '--min-keep', cfg.minKeep)
  args.addAll(['--push-cmd', push])
  support.addOption(args, '--gc-cmd', cfg.gcCommand)
  support.addOption(args, '--readonly-cmd', cfg.readonlyCommand)
  support.addOption(args, '--restart-cmd', cfg.restartCommand)
  support.addOption(args, '--stop-cmd', cfg.stopCommand)
  support.addOption(args, '--start-cmd', cfg.startCommand)
  if (cfg.allowLiveGc == true) {
    args.add('--allow-live-gc')
  }
  support.addOption(args, '--disk', cfg.disk)
  support.addOption(args, '--min-free', cfg.minFree)
  support.addOption(args, '--console-log', consoleLog)
  args.addAll(['--audit-dir', cfg.auditDir, '--json', cfg.reportFile])
  support.addOption(args, '--slack-channel', cfg.channel)
  if (cfg.dryRun) {
    args.add('--dry-run')
  }
  if (cfg.force) {
    args.add('--force')
  }

  int status = support.runTool(cfg, support.toolCommand(tool, args))
  Map report = support.collectReport(cfg)
  return conclude(cfg, status, report)
}

/** pushCommand as given, or `docker push IMAGE`; the tool reruns it to prove the recovery. */
String pushCommand(Map cfg) {
  if (cfg.pushCommand && cfg.image) {
    error('registryRecover: give image or pushCommand, not both')
  }
  if (cfg.pushCommand) {
    return cfg.pushCommand.toString()
  }
  if (cfg.image) {
    return "docker push ${registryPruneSupport.shellQuote(cfg.image)}".toString()
  }
  error('registryRecover: image (or pushCommand) is required: the push to retry after pruning')
}

/**
 * The workspace file holding the failed build's console for `recover` to classify.
 * rawBuild is fine in a global (trusted) library; in the sandbox it is rejected,
 * and recover then runs without a log rather than failing the step.
 */
String consoleLogFile(Map cfg) {
  if (cfg.consoleLog == false) {
    return null
  }
  if (cfg.consoleLog != null) {
    return cfg.consoleLog.toString()
  }
  List lines
  try {
    lines = currentBuild.rawBuild.getLog(cfg.consoleLogLines as int)
  } catch (Exception e) {
    // Without a log, recover acts only on disk or force; it says so itself if neither is given.
    echo('registryRecover: cannot read this build\'s console log ' +
      "(${e.getClass().simpleName}: use a global library, or pass consoleLog: 'file'); running recover without it")
    return null
  }
  writeFile(file: cfg.consoleLogFile, text: lines.join('\n') + '\n')
  return cfg.consoleLogFile.toString()
}

/** Exit code -> build result: 0 passes, 10 (pruning cannot help) is UNSTABLE, anything else fails. */
Map conclude(Map cfg, int status, Map report) {
  def support = registryPruneSupport
  String prefix = cfg.dryRun ? 'registry-prune (dry run)' : 'registry-prune'
  Map result = [status: status, report: report]
  if (status == 0) {
    // Exit 0 is also "nothing to do" and "pruned, no push given": only the report's outcome says which.
    Object deleted = support.deletedCount(report)
    String outcome = report?.outcome?.toString()
    if (cfg.dryRun) {
      support.describe("${prefix}: nothing changed${deleted == null ? '' : "; would delete ${deleted} tag(s)"}")
    } else if (outcome == 'recovered') {
      support.describe("${prefix}: push recovered${deleted == null ? '' : "; deleted ${deleted} tag(s)"}")
    } else {
      support.describe("${prefix}: ${support.reportReason(report) ?: 'done (no report was written)'}")
    }
    return result
  }
  String why = support.reportReason(report)
  if (status == 10) {
    String detail = why ?: 'see the classification in the log above'
    support.describe("${prefix}: pruning cannot help: ${detail}")
    unstable("registry-prune: pruning the registry cannot fix this failure: ${detail}")
    return result
  }
  String meaning = support.exitMeaning(status)
  if (status == 11) {
    support.describe("${prefix}: push still failing after recovery")
    error("registry-prune: ${meaning} (exit 11)${why ? ': ' + why : ''}")
  }
  support.describe("${prefix}: failed, exit ${status}: ${meaning}")
  error("registry-prune recover failed (exit ${status}): ${meaning}${why ? '; ' + why : ''}")
}

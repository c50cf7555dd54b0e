// registryGc: `registry-prune gc`, the garbage collection that actually frees the disk after a
// prune, behind a guard (read-only + restart, or stop + start), measured and reported to Slack.
// Parameters, defaults and examples: registryGc.txt.

Map defaults() {
  return [
    registry: null,                    // falls back to env.REGISTRY_URL: its lock, and a health check after
    credentialsId: null,
    caBundle: null,
    gcCommand: null,                   // required
    readonlyCommand: null,             // GC runs only behind a guard: readonly + restart, or stop + start
    restartCommand: null,
    stopCommand: null,
    startCommand: null,
    allowLiveGc: false,
    disk: null,                        // how to measure the freed bytes
    predictedFrom: null,               // a prune report, to compare the prediction with the measurement
    slackWebhookCredentialsId: null,
    slackTokenCredentialsId: null,
    channel: null,
    reportFile: 'registry-prune-gc.json',
    lock: true,
  ] + registryPruneSupport.installDefaults()
}

def call(Map config = [:]) {
  def support = registryPruneSupport
  Map cfg = support.merge('registryGc', defaults(), config, false)
  support.checkSlack('registryGc', cfg)
  if (!cfg.gcCommand) {
    error('registryGc: gcCommand is required (docs/jenkins.md has recipes)')
  }
  String tool = support.tool(cfg)
  List args = ['gc', '--registry', cfg.registry]
  support.addOption(args, '--ca-bundle', cfg.caBundle)
  args.addAll(['--gc-cmd', cfg.gcCommand])
  support.addOption(args, '--readonly-cmd', cfg.readonlyCommand)
  support.addOption(args, '--restart-cmd', cfg.restartCommand)
  support.addOption(args, '--stop-cmd', cfg.stopCommand)
  support.addOption(args, '--start-cmd', cfg.startCommand)
  if (cfg.allowLiveGc == true) {
    args.add('--allow-live-gc')
  }
  support.addOption(args, '--disk', cfg.disk)
  if (cfg.predictedFrom && fileExists(cfg.predictedFrom.toString())) {
    args.addAll(['--predicted-from', cfg.predictedFrom])
  }
  args.addAll(['--json', cfg.reportFile])
  support.addOption(args, '--slack-channel', cfg.channel)

  int status = support.runTool(cfg, support.toolCommand(tool, args))
  Map report = support.collectReport(cfg)
  return conclude(status, report)
}

/** Exit code -> build result: 0 passes with the freed bytes in the description; anything else fails. */
Map conclude(int status, Map report) {
  def support = registryPruneSupport
  Map result = [status: status, report: report]
  if (status == 0) {
    Object freed = report?.gc instanceof Map ? report.gc.freed_bytes : null
    support.describe("registry-prune gc: ${freed == null ? (support.reportReason(report) ?: 'done') : "freed ${freed} bytes"}")
    return result
  }
  String meaning = support.exitMeaning(status)
  String why = support.reportReason(report)
  support.describe("registry-prune gc: failed, exit ${status}: ${meaning}")
  error("registry-prune gc failed (exit ${status}): ${meaning}${why ? '; ' + why : ''}")
}

// registryPrune: a plain `registry-prune prune`, for manual runs and nightly
// schedules. It is a dry run unless called with dryRun: false (the boolean).
// Parameters, defaults and examples: registryPrune.txt.

Map defaults() {
  return registryPruneSupport.commonDefaults() + [
    dryRun: true,
  ]
}

def call(Map config = [:]) {
  def support = registryPruneSupport
  Map cfg = support.merge('registryPrune', defaults(), config)
  // Only the boolean false deletes: null, a blank UI field or the string 'false' stay safe.
  boolean dryRun = !(cfg.dryRun instanceof Boolean && cfg.dryRun == false)
  if (dryRun) {
    echo('registryPrune: dry run, nothing is deleted (pass dryRun: false to delete)')
  }

  String tool = support.tool(cfg)
  List args = ['prune'] + support.policyArgs(cfg)
  args.addAll(['--audit-dir', cfg.auditDir, '--json', cfg.reportFile])
  if (dryRun) {
    args.add('--dry-run')
  }

  int status = support.runTool(cfg, support.toolCommand(tool, args))
  Map report = support.collectReport(cfg)
  return conclude(dryRun, status, report)
}

/** Exit code -> build result: 0 passes, 5 (some deletions failed) is UNSTABLE, anything else fails. */
Map conclude(boolean dryRun, int status, Map report) {
  def support = registryPruneSupport
  String prefix = dryRun ? 'registry-prune (dry run)' : 'registry-prune'
  Map result = [status: status, report: report]
  if (status == 0) {
    Object deleted = support.deletedCount(report)
    String outcome = deleted == null ? 'done' : (dryRun ? "would delete ${deleted} tag(s)" : "deleted ${deleted} tag(s)")
    support.describe("${prefix}: ${outcome}")
    return result
  }
  String meaning = support.exitMeaning(status)
  if (status == 5) {
    support.describe("${prefix}: some deletions failed")
    unstable("registry-prune: ${meaning}")
    return result
  }
  String why = support.reportReason(report)
  support.describe("${prefix}: failed, exit ${status}: ${meaning}")
  error("registry-prune prune failed (exit ${status}): ${meaning}${why ? '; ' + why : ''}")
}

// registryRestore: `registry-prune restore`, putting back what a prune deleted from its undo log
// (archived by registryPrune and registryRecover), until garbage collection runs.
// Parameters, defaults and examples: registryRestore.txt.

Map defaults() {
  return [
    registry: null,                    // falls back to env.REGISTRY_URL
    credentialsId: null,               // a user allowed to push
    caBundle: null,
    auditLog: null,                    // one undo log (a workspace file) ...
    auditDir: null,                    // ... or a folder: its newest log (restore --latest)
    tag: [],                           // only the images carrying these tags
    repository: [],                    // only these repositories
    force: false,                      // move a tag back even if it was pushed again since
    dryRun: false,
    reportFile: 'registry-prune-restore.json',
    lock: true,
  ] + registryPruneSupport.installDefaults()
}

def call(Map config = [:]) {
  def support = registryPruneSupport
  Map cfg = support.merge('registryRestore', defaults(), config, false)
  if (!cfg.auditLog == !cfg.auditDir) {
    error('registryRestore: give auditLog (an undo log) or auditDir (its newest log is used), one of the two')
  }
  String tool = support.tool(cfg)
  List args = ['restore', '--registry', cfg.registry]
  support.addOption(args, '--ca-bundle', cfg.caBundle)
  if (cfg.auditLog) {
    args.addAll(['--from', cfg.auditLog])
  } else {
    args.addAll(['--latest', cfg.auditDir])
  }
  for (String tag in support.repositories([repository: cfg.tag])) {
    args.addAll(['--tag', tag])
  }
  for (String repo in support.repositories([repository: cfg.repository])) {
    args.addAll(['--repo', repo])
  }
  if (cfg.force == true) {
    args.add('--force')
  }
  args.addAll(['--json', cfg.reportFile])
  boolean dryRun = cfg.dryRun == true
  if (dryRun) {
    args.add('--dry-run')
  }

  int status = support.runTool(cfg, support.toolCommand(tool, args))
  Map report = support.collectReport(cfg)
  return conclude(dryRun, status, report)
}

/** Exit code -> build result: 0 passes, 5 (some images could not be restored) is UNSTABLE, anything else fails. */
Map conclude(boolean dryRun, int status, Map report) {
  def support = registryPruneSupport
  String prefix = dryRun ? 'registry-prune restore (dry run)' : 'registry-prune restore'
  Map result = [status: status, report: report]
  String why = support.reportReason(report)
  if (status == 0) {
    support.describe("${prefix}: ${why ?: 'done'}")
    return result
  }
  String meaning = support.exitMeaning(status)
  if (status == 5) {
    support.describe("${prefix}: ${why ?: meaning}")
    unstable("registry-prune restore: ${why ?: meaning}")
    return result
  }
  support.describe("${prefix}: failed, exit ${status}: ${meaning}")
  error("registry-prune restore failed (exit ${status}): ${meaning}${why ? '; ' + why : ''}")
}

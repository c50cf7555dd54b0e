/** currentBuild (a RunWrapper in Jenkins). */
class FakeBuild {
  String result = null
  String description = null
  FakeRun run = new FakeRun()
  boolean sandboxed = false

  FakeRun getRawBuild() {
    if (sandboxed) {
      // What script-security's RejectedAccessException (a SecurityException) says.
      throw new SecurityException('Scripts not permitted to use method ' +
        'org.jenkinsci.plugins.workflow.support.steps.build.RunWrapper getRawBuild')
    }
    return run
  }

  String getCurrentResult() {
    return result ?: 'SUCCESS'
  }

  /** Jenkins never improves a result: FAILURE stays FAILURE after unstable. */
  void worsen(String to) {
    List order = ['SUCCESS', 'UNSTABLE', 'FAILURE']
    if (order.indexOf(to) > order.indexOf(getCurrentResult())) {
      result = to
    }
  }
}

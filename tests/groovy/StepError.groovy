/** What the error step throws in Jenkins (hudson.AbortException), for tests to catch. */
class StepError extends RuntimeException {
  StepError(String message) {
    super(message)
  }
}

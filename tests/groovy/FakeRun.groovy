/** currentBuild.rawBuild: only getLog(maxLines) is used. */
class FakeRun {
  List<String> log = []

  List<String> getLog(int maxLines) {
    return log.size() > maxLines ? log.subList(log.size() - maxLines, log.size()) : log
  }
}

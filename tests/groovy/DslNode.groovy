// A recorded directive or step call of a Jenkinsfile run by PipelineDsl.

class DslNode {
  String name
  List args = []
  List<DslNode> children = []
  /** `NAME = value` inside the block (environment { }). */
  Map assignments = [:]

  Map getNamed() {
    return args && args[0] instanceof Map ? (Map) args[0] : [:]
  }

  DslNode child(String childName) {
    DslNode found = children.find { it.name == childName }
    assert found != null: "no ${childName} in ${name}; it has ${children*.name}"
    return found
  }

  List<DslNode> all(String wanted) {
    List<DslNode> result = children.findAll { it.name == wanted }
    for (DslNode c in children) {
      result.addAll(c.all(wanted))
    }
    return result
  }

  String toString() {
    return "${name}(${args})"
  }
}

// Runs a Declarative Jenkinsfile as plain Groovy: every directive and step
// becomes a recorded node, and every block is entered, so tests can check the
// structure and the arguments steps would get.

import org.codehaus.groovy.runtime.InvokerHelper

class PipelineDsl {
  DslNode root = new DslNode(name: '(script)')
  DslNode current = root
  Map env = [BUILD_NUMBER: '42']
  Map params = [:]
  boolean timerTriggered = false
  Object currentBuild = new Expando(getBuildCauses: { String type ->
    timerTriggered && type == 'hudson.triggers.TimerTrigger$TimerTriggerCause' ? [[shortDescription: 'Started by timer']] : []
  })

  /** Compiles and runs the Jenkinsfile; a syntax error fails here. */
  static PipelineDsl run(File jenkinsfile, Map params = [:], boolean timer = false) {
    PipelineDsl dsl = new PipelineDsl(params: params, timerTriggered: timer)
    Binding binding = new Binding([pipeline: { Closure body -> dsl.invoke('pipeline', [body] as Object[]) }])
    InvokerHelper.createScript(compiled(jenkinsfile), binding).run()
    return dsl
  }

  private static final Map<String, Class> COMPILED = [:]

  private static synchronized Class compiled(File jenkinsfile) {
    String key = jenkinsfile.canonicalPath
    if (!COMPILED.containsKey(key)) {
      COMPILED[key] = new GroovyShell(PipelineDsl.classLoader).parse(jenkinsfile).getClass()
    }
    return COMPILED[key]
  }

  Object invoke(String name, Object[] args) {
    List plain = args.findAll { !(it instanceof Closure) }
    DslNode node = new DslNode(name: name, args: plain)
    current.children.add(node)
    Closure body = args && args[-1] instanceof Closure ? (Closure) args[-1] : null
    if (body != null) {
      DslNode saved = current
      Map savedEnv = new HashMap(env)
      current = node
      body.delegate = this
      body.resolveStrategy = Closure.DELEGATE_FIRST
      try {
        body.call()
      } finally {
        current = saved
        if (name == 'pipeline') {
          env = savedEnv
        }
      }
    }
    return node
  }

  def methodMissing(String name, Object args) {
    return invoke(name, args as Object[])
  }

  /** Bare words such as `agent any`. */
  def propertyMissing(String name) {
    return name
  }

  /** `NAME = value` in environment { }: later directives read it as env.NAME. */
  def propertyMissing(String name, Object value) {
    current.assignments[name] = value
    if (current.name == 'environment') {
      env[name] = value.toString()
    }
  }
}

// Stands in for org.jenkinsci.plugins.workflow.libs.Library, which Jenkins
// imports into every Jenkinsfile, so `@Library('...') _` compiles here too.

import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

@Retention(RetentionPolicy.SOURCE)
@interface Library {
  String[] value()
}

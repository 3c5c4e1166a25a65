// Tillgate Android sample: a thin Android UI (:app) over plain-Kotlin app logic (:app-logic).
// Not built on the Tillgate CI machines (no Android SDK there); see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "tillgate-android-sample"
include(":app-logic", ":app")

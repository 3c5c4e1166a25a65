// The app's logic: plain Kotlin on the JVM, no Android imports. Compiled together with the
// Kotlin binding of tillgate-ffi (package dev.tillgate): the uniffi-generated code plus its
// hand-written JNI part (bindings/ffi/kotlin: the pure functions, called through JNI).
import org.gradle.api.tasks.Exec

plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin { jvmToolchain(17) }

val repoRoot = rootDir.parentFile
val generatedBindings = layout.buildDirectory.dir("generated/uniffi")

// Generates the Kotlin bindings from the host build of tillgate-ffi (the bindings are the
// same for every ABI; only the native library differs per ABI).
val generateBindings by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine(
        "sh", "-c",
        "cargo build -q -p tillgate-ffi -p uniffi-bindgen && " +
            "target/debug/uniffi-bindgen generate --library target/debug/libtillgate_ffi.so " +
            "--language kotlin --no-format --out-dir \"$1\"",
        "sh", generatedBindings.get().asFile.absolutePath,
    )
    outputs.dir(generatedBindings)
}

sourceSets["main"].kotlin.srcDir(generatedBindings)
sourceSets["main"].kotlin.srcDir(File(repoRoot, "bindings/ffi/kotlin"))
tasks.named("compileKotlin") { dependsOn(generateBindings) }

dependencies {
    // JNA: the plain jar here; the Android app adds the @aar variant with its native parts.
    compileOnly("net.java.dev.jna:jna:5.15.0")
    // The uniffi bindings' suspend functions (tillgate-client) need coroutines.
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
    testImplementation("net.java.dev.jna:jna:5.15.0")
    testImplementation("com.google.code.gson:gson:2.11.0") // the fake server's JSON
    testImplementation("junit:junit:4.13.2")
}

// The JVM tests load the host library (target/debug/libtillgate_ffi.so), through JNA and,
// for the JNI part, the file JNA found.
tasks.test {
    systemProperty("jna.library.path", File(repoRoot, "target/debug").absolutePath)
    exclude("**/Runner*")
}

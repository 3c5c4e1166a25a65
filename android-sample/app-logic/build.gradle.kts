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

// Where cargo puts what it builds: CARGO_TARGET_DIR when set (relative to the repository,
// as cargo takes it there), else target/ in the repository.
val cargoTargetDir: File = System.getenv("CARGO_TARGET_DIR")?.takeIf { it.isNotBlank() }
    ?.let { File(it).let { dir -> if (dir.isAbsolute) dir else File(repoRoot, it) } }
    ?: File(repoRoot, "target")
val hostDebugDir = File(cargoTargetDir, "debug")

// The host build of tillgate-ffi is named per OS: libtillgate_ffi.so (Linux),
// libtillgate_ffi.dylib (macOS), tillgate_ffi.dll (Windows, no lib prefix).
val hostOs = System.getProperty("os.name").lowercase()
val isWindows = hostOs.startsWith("windows")
val hostFfiLibrary = when {
    isWindows -> "tillgate_ffi.dll"
    hostOs.startsWith("mac") || hostOs.contains("darwin") -> "libtillgate_ffi.dylib"
    else -> "libtillgate_ffi.so"
}

// Builds the host tillgate-ffi and the pinned uniffi-bindgen (no shell: works on Windows too;
// cargo reads CARGO_TARGET_DIR from the environment Gradle passes on).
val buildHostFfi by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine("cargo", "build", "-q", "-p", "tillgate-ffi", "-p", "uniffi-bindgen")
}

// Generates the Kotlin bindings from that host library (the bindings are the same for
// every ABI; only the native library differs per ABI).
val generateBindings by tasks.registering(Exec::class) {
    dependsOn(buildHostFfi)
    workingDir = repoRoot
    commandLine(
        File(hostDebugDir, if (isWindows) "uniffi-bindgen.exe" else "uniffi-bindgen").absolutePath,
        "generate", "--library", File(hostDebugDir, hostFfiLibrary).absolutePath,
        "--language", "kotlin", "--no-format", "--out-dir", generatedBindings.get().asFile.absolutePath,
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

// The JVM tests load the host library (hostFfiLibrary in the cargo target's debug/), through
// JNA and, for the JNI part, the file JNA found.
tasks.test {
    systemProperty("jna.library.path", hostDebugDir.absolutePath)
    exclude("**/Runner*")
}

// The thin Android UI over :app-logic. Native libraries per ABI come from cargo-ndk into
// src/main/jniLibs (see ../README.md and ../build-native.sh).
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.tillgate.sample.android"
    compileSdk = 35
    defaultConfig {
        applicationId = "com.example.pos"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        // The Tillgate server the register talks to (10.0.2.2 is the host, seen from the emulator).
        buildConfigField("String", "SERVER_URL", "\"http://10.0.2.2:8080\"")
        ndk { abiFilters += listOf("armeabi-v7a", "arm64-v8a", "x86", "x86_64") }
    }
    buildFeatures { buildConfig = true }
    buildTypes {
        release {
            // Not shrunk here; an app that sets isMinifyEnabled = true needs these keep rules
            // (the JNI entry points and the JNA-based bindings are found by name at run time).
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation(project(":app-logic"))
    implementation("net.java.dev.jna:jna:5.15.0@aar")
    // Dispatchers.Main for the Activity's coroutines (the client's calls are suspend functions).
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

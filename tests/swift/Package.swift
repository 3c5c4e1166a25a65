// swift-tools-version:5.9
// SwiftPM package over the uniffi-generated bindings of tillgate-ffi.
// scripts/test-swift.sh copies the generated Tillgate.swift into Sources/Tillgate and
// TillgateFFI.h into Sources/TillgateFFI, and links libtillgate_ffi.so.
import PackageDescription

let package = Package(
    name: "Tillgate",
    products: [.library(name: "Tillgate", targets: ["Tillgate"])],
    targets: [
        .systemLibrary(name: "TillgateFFI", path: "Sources/TillgateFFI"),
        .target(name: "Tillgate", dependencies: ["TillgateFFI"], path: "Sources/Tillgate"),
        .testTarget(name: "TillgateTests", dependencies: ["Tillgate"], path: "Tests/TillgateTests"),
    ]
)

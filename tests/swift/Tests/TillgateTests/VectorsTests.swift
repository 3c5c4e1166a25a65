// Every shared vector in tests/vectors/*.json against the generated Swift bindings.
// One XCTest per vector file; each failing vector is reported by name, and each test
// prints how many vectors it checked. Mirrors core/tests/vectors.rs.
import Foundation
import XCTest
@testable import Tillgate

typealias JSON = [String: Any]

let vectorsDir = ProcessInfo.processInfo.environment["TILLGATE_VECTORS"] ?? "tests/vectors"

/// Members of a vector file, or of its cases, written for people, which no test reads (a
/// case's name too, see `VectorCase`). The Rust, Kotlin, Python and JS runners allow the
/// same names.
let forPeople: Set<String> = ["description", "comment"]

/// A vector file as it is: for a test that reads only part of a file another test reads
/// through `load`.
func peek(_ name: String) throws -> JSON {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(vectorsDir)/\(name).json"))
    return try JSONSerialization.jsonObject(with: data) as! JSON
}

/// A vector file that records which of its top-level members were read (`v["jwks"]`,
/// `v.list("cases")`, `v.str("alphabet")`), and holds the cases it gave out.
final class Vectors {
    let name: String
    private let json: JSON
    private var read = Set<String>()
    private(set) var cases = [VectorCase]()

    init(_ name: String) throws {
        self.name = name
        json = try peek(name)
    }

    subscript(_ k: String) -> Any? {
        read.insert(k)
        return json[k]
    }

    func str(_ k: String) -> String { self[k] as! String }

    /// The cases under `k`, each recording which of its members are read (`VectorCase`).
    func list(_ k: String) -> [VectorCase] {
        read.insert(k)
        let list = json.list(k).enumerated().map { i, c in
            VectorCase("\(name).json \(k)[\(i)]" + ((c["name"] as? String).map { " \"\($0)\"" } ?? ""), c)
        }
        cases += list
        return list
    }

    /// The top-level members neither read nor named in `forPeople`.
    var unread: [String] { json.keys.filter { !read.contains($0) && !forPeople.contains($0) }.sorted() }
}

/// One case of a vector file, or an object in one that a test reads member by member
/// (`obj`), that records which of its members were read. When the test that loaded its
/// file ends (`load`), every member must have been read, but those for people: a file's
/// (`forPeople`) and a case's name, which messages print. So a case that gains a member
/// (an `error` where none was, a new expected value) fails until a test reads it. The
/// Rust, Kotlin, Python and JS runners have the same guard.
final class VectorCase {
    let at: String
    private let json: JSON
    private let isCase: Bool
    private var read = Set<String>()
    private var objs = [String: VectorCase]()

    init(_ at: String, _ json: JSON, isCase: Bool = true) {
        self.at = at
        self.json = json
        self.isCase = isCase
    }

    subscript(_ k: String) -> Any? {
        read.insert(k)
        return json[k]
    }

    func str(_ k: String) -> String { self[k] as! String }
    func strOrNil(_ k: String) -> String? { self[k] as? String }
    func int(_ k: String) -> Int64 { (self[k] as! NSNumber).int64Value }
    func intOrNil(_ k: String) -> Int64? { (self[k] as? NSNumber)?.int64Value }
    func bool(_ k: String) -> Bool { self[k] as! Bool }

    /// The object under `k`, whose members must each be read too.
    func obj(_ k: String) -> VectorCase {
        if let o = objs[k] { return o }
        let o = VectorCase("\(at) \(k)", self[k] as! JSON, isCase: false)
        objs[k] = o
        return o
    }

    /// The members neither read nor for people; those of objects inside as `expected.login`.
    var unread: [String] {
        json.keys.filter { !read.contains($0) && !forPeople.contains($0) && !(isCase && $0 == "name") }.sorted()
            + objs.keys.sorted().flatMap { k in objs[k]!.unread.map { "\(k).\($0)" } }
    }
}

func unhex(_ s: String) -> Data {
    var out = Data()
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// A string's UTF-8 bytes, for comparing text exactly: Swift's String equality takes the
/// NFC and NFD spellings of the same text (`é` and `e` + U+0301) as equal; the wire does not.
func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

func jsonText(_ v: Any) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]), encoding: .utf8)!
}

/// Equal as JSON: both sides serialised with sorted keys.
func same(_ a: Any, _ b: Any) -> Bool {
    func canon(_ v: Any) -> Data? { try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) }
    guard let x = canon(a), let y = canon(b) else { return false }
    return x == y
}

/// The rule a vector names; nil for a name this runner does not know (the caller fails:
/// an unknown name is never read as another rule).
func corporateIdRule(_ name: String) -> CorporateIdRule? {
    switch name {
    case "generic": return .generic
    case "swedishOrgNumber": return .swedishOrgNumber
    default: return nil
    }
}

extension Dictionary where Key == String, Value == Any {
    func obj(_ k: String) -> JSON { self[k] as! JSON }
    func list(_ k: String) -> [JSON] {
        let l = self[k] as! [JSON]
        precondition(!l.isEmpty, "no cases under \(k)")
        return l
    }
}

struct Details {
    let code: String
    let reason: String
    let fields: [FieldError]
    let position: UInt32?
    let character: String?
    let index: UInt32?
}

final class VectorsTests: XCTestCase {
    /// Loads a vector file for this test, which must read every top-level member of it
    /// (checked when the test ends), but those `forPeople`: a new list of cases or any
    /// other new member fails here until a test checks it. Likewise every member of every
    /// case it read (`VectorCase`), unless the test already failed (it reports its own
    /// failure).
    func load(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Vectors {
        let v = try Vectors(name)
        addTeardownBlock {
            let unread = v.unread
            if !unread.isEmpty {
                XCTFail("\(name).json: top-level member(s) \(unread) read by no Swift test", file: file, line: line)
            }
            guard (self.testRun?.totalFailureCount ?? 0) == 0 else { return }
            for c in v.cases where !c.unread.isEmpty {
                XCTFail("tests/vectors/\(c.at): member(s) \(c.unread) read by no Swift test", file: file, line: line)
            }
        }
        return v
    }

    /// Runs `body`, which must throw `code`; returns the error's details.
    @discardableResult
    func expectErr(_ name: String, _ code: String, _ body: () throws -> Void) -> Details? {
        do {
            try body()
            XCTFail("\(name): expected \(code), got success")
        } catch let TillgateError.Failed(c, reason, fields, position, character, index, httpStatus, retryAfterMs, transient, auth) {
            XCTAssertEqual(c, code, "\(name): \(reason)")
            // Core's errors never carry what only a server's answer has.
            XCTAssertNil(httpStatus, name)
            XCTAssertNil(retryAfterMs, name)
            XCTAssertFalse(transient, name)
            XCTAssertFalse(auth, name)
            return Details(code: c, reason: reason, fields: fields, position: position, character: character, index: index)
        } catch {
            XCTFail("\(name): unexpected \(error)")
        }
        return nil
    }

    func check(_ name: String, _ body: () throws -> Void) {
        do { try body() } catch { XCTFail("\(name): \(error)") }
    }

    func fieldsJSON(_ f: [FieldError]) -> [[String: String]] { f.map { ["field": $0.field, "code": $0.code] } }

    func testEd25519() throws {
        let cases = try load("ed25519").list("cases")
        for c in cases {
            let name = c.str("name")
            let (pk, msg, sig) = (unhex(c.str("publicKey")), unhex(c.str("message")), unhex(c.str("signature")))
            if c.bool("valid") {
                check(name) {
                    try verifyEd25519(publicKey: pk, message: msg, signature: sig)
                    let key = try SigningKey.fromSeed(seed: unhex(c.str("secretKey")))
                    XCTAssertEqual(key.publicKey(), pk, name)
                    XCTAssertEqual(key.signRaw(message: msg), sig, name)
                }
            } else {
                expectErr(name, c.str("error")) { try verifyEd25519(publicKey: pk, message: msg, signature: sig) }
            }
        }
        print("ed25519: \(cases.count) vectors checked")
    }

    func testApiKey() throws {
        let v = try load("api_key")
        let cases = v.list("cases")
        for c in cases {
            let name = c.str("name"), key = c.str("key")
            if c.bool("valid") {
                check(name) { XCTAssertEqual(try validateApiKey(key: key), key, name) }
            } else if let e = expectErr(name, c.str("error"), { _ = try validateApiKey(key: key) }), c["position"] != nil {
                XCTAssertEqual(e.position.map(Int64.init), c.int("position"), name)
                XCTAssertEqual(e.character.map(utf8), utf8(c.str("char")), name)
            }
        }
        // The binding exposes no alphabet, so enough keys are generated to see every
        // character: 40 keys of 256 miss one of ~78 characters with odds below 1e-55.
        for (alphabet, chars) in [(ApiKeyAlphabet.full, v.str("alphabet")), (.urlSafe, v.str("urlSafeAlphabet"))] {
            let name = "generated \(alphabet) keys"
            XCTAssertEqual(Set(chars).count, chars.count, "\(name): a character twice in \(chars)")
            check(name) {
                var seen = Set<Character>()
                for _ in 0..<40 {
                    let k = try generateApiKey(length: 256, alphabet: alphabet)
                    XCTAssertEqual(k.count, 256, name)
                    XCTAssertEqual(try validateApiKey(key: k), k, name)
                    seen.formUnion(k)
                }
                XCTAssertEqual(String(seen.sorted()), String(Set(chars).sorted()), name)
                XCTAssertEqual(try generateApiKey(length: 40, alphabet: alphabet).count, 40, name)
            }
            expectErr("\(name): 19", "api_key_too_short") { _ = try generateApiKey(length: 19, alphabet: alphabet) }
        }
        // Every character the vectors call reserved, not only those with a case of their own.
        let reserved = v.str("reserved")
        XCTAssertFalse(reserved.isEmpty, "no reserved characters")
        for ch in reserved {
            let name = "reserved '\(ch)'"
            if let e = expectErr(name, "api_key_reserved_char", { _ = try validateApiKey(key: "Abcdefghij\(ch)0123456789") }) {
                XCTAssertEqual(e.position, UInt32(10), name)
                XCTAssertEqual(e.character, String(ch), name)
            }
        }
        print("api_key: \(cases.count) vectors checked, \(reserved.count) reserved characters refused")
    }

    func tokenJSON(_ t: UrlToken) -> JSON {
        let prefix: String
        switch t.prefix {
        case .openApi: prefix = "OpenApi"
        case .anywhere: prefix = "Anywhere"
        case .gnap: prefix = "Gnap"
        }
        return [
            "prefix": prefix, "version": t.version.map { NSNumber(value: $0) } ?? NSNull(),
            "rmSystem": t.rmSystem.map { NSNumber(value: $0) }, "rve": t.rve ?? NSNull(),
            "params": t.params.map { ["id": $0.id, "value": $0.value] }, "token": t.token ?? NSNull(),
            "rest": t.rest,
        ]
    }

    func testUrlToken() throws {
        let cases = try load("url_token").list("cases")
        for c in cases {
            let name = c.str("name"), path = c.str("path")
            if c.bool("valid") {
                check(name) {
                    let t = try parseUrlToken(path: path)
                    XCTAssertTrue(same(tokenJSON(t), c["expected"]!), "\(name): \(tokenJSON(t))")
                    let encoded = try encodeUrlToken(token: t)
                    XCTAssertEqual(encoded, c.str("encoded"), name)
                    XCTAssertEqual(try parseUrlToken(path: encoded), t, name)
                }
            } else if let e = expectErr(name, c.str("error"), { _ = try parseUrlToken(path: path) }) {
                XCTAssertEqual(e.position.map(Int64.init), c.int("position"), name)
            }
        }
        print("url_token: \(cases.count) vectors checked")
    }

    func testActivation() throws {
        let cases = try load("activation").list("cases")
        for c in cases {
            let name = c.str("name"), r = c.obj("request")
            let extras = r["extras"].flatMap { $0 is NSNull ? nil : jsonText($0) }
            let req = ActivationRequest(
                cashRegisterName: r.strOrNil("cashRegisterName") ?? "", deviceId: r.strOrNil("deviceId") ?? "",
                validFrom: r.strOrNil("validFrom") ?? "", validTo: r.strOrNil("validTo") ?? "",
                corporateId: r.strOrNil("corporateId") ?? "", applicationPackage: r.strOrNil("applicationPackage") ?? "",
                country: r.strOrNil("country"), extrasJson: extras)
            guard let rule = corporateIdRule(c.str("corporateIdRule")) else {
                XCTFail("\(name): unknown corporateIdRule \(c.str("corporateIdRule"))")
                continue
            }
            if c.bool("valid") {
                check(name) {
                    let ok = try validateActivationRequest(request: req, corporateIdRule: rule)
                    let e = c.obj("expected")
                    XCTAssertEqual([ok.corporateId, ok.country, ok.validFrom, ok.validTo],
                                   [e.str("corporateId"), e.str("country"), e.str("validFrom"), e.str("validTo")], name)
                }
            } else if let e = expectErr(name, c.str("error"), { _ = try validateActivationRequest(request: req, corporateIdRule: rule) }) {
                XCTAssertTrue(same(fieldsJSON(e.fields), c["fields"]!), "\(name): \(fieldsJSON(e.fields))")
            }
        }
        print("activation: \(cases.count) vectors checked")
    }

    func testTransaction() throws {
        let v = try load("transaction")
        let cases = v.list("cases"), unparsable = v.list("unparsable")
        for c in cases {
            let name = c.str("name")
            check(name) {
                let tx = try transactionFromJson(json: jsonText(c["transaction"]!))
                if c.bool("valid") {
                    try validateTransaction(transaction: tx)
                    // Bytes: String equality takes NFC and NFD spellings as equal (see utf8).
                    XCTAssertEqual(utf8(transactionCanonicalJson(transaction: tx)), utf8(c.str("canonical")), name)
                    XCTAssertEqual(transactionHash(transaction: tx), c.str("hash"), name)
                } else if let e = expectErr(name, c.str("error"), { try validateTransaction(transaction: tx) }) {
                    XCTAssertTrue(same(fieldsJSON(e.fields), c["fields"]!), "\(name): \(fieldsJSON(e.fields))")
                }
            }
        }
        for c in unparsable {
            expectErr(c.str("name"), "invalid_argument") { _ = try transactionFromJson(json: c.str("json")) }
        }
        print("transaction: \(cases.count + unparsable.count) vectors checked")
    }

    func testProduct() throws {
        let v = try load("product")
        let cases = v.list("cases"), unparsable = v.list("unparsable")
        for c in cases {
            let name = c.str("name")
            check(name) {
                let p = try productFromJson(id: c.str("id"), json: jsonText(c["product"]!))
                XCTAssertEqual(p.id, c.str("id"), name)
                if c.bool("valid") {
                    try validateProduct(product: p)
                    if let canonical = c.strOrNil("canonical") {
                        XCTAssertEqual(utf8(productToJson(product: p)), utf8(canonical), name)
                    }
                } else if let e = expectErr(name, c.str("error"), { try validateProduct(product: p) }) {
                    XCTAssertTrue(same(fieldsJSON(e.fields), c["fields"]!), "\(name): \(fieldsJSON(e.fields))")
                }
            }
        }
        for c in unparsable {
            expectErr(c.str("name"), "invalid_argument") { _ = try productFromJson(id: "p", json: c.str("json")) }
        }
        print("product: \(cases.count + unparsable.count) vectors checked")
    }

    /// Every file in the vectors directory is read by a test here, through `load` with its
    /// name: checked in this file's own source, since XCTest runs the tests in any order.
    /// So a new file cannot go unchecked in Swift.
    func testEveryVectorFileIsRead() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: vectorsDir).filter { $0.hasSuffix(".json") }
        XCTAssertFalse(files.isEmpty, "no vector files in \(vectorsDir)")
        for file in files.sorted() {
            let name = String(file.dropLast(".json".count))
            XCTAssertTrue(source.contains("load(\"\(name)\")"), "\(file) is read by no Swift test")
        }
        print("vector files: \(files.count) in the directory, each checked for a test that loads it")
    }

    func descriptorJSON(_ d: ActivationDescriptor) -> JSON {
        [
            "iss": d.iss, "sub": d.sub, "iat": NSNumber(value: d.iat), "nbf": NSNumber(value: d.nbf),
            "exp": NSNumber(value: d.exp), "ver": NSNumber(value: d.ver), "activationId": d.activationId,
            "cashRegisterName": d.cashRegisterName, "deviceId": d.deviceId, "corporateId": d.corporateId,
            "country": d.country, "applicationPackage": d.applicationPackage, "features": d.features,
            "status": d.status,
            "extras": try! JSONSerialization.jsonObject(with: d.extrasJson.data(using: .utf8)!),
        ]
    }

    func descriptorFrom(_ o: VectorCase) -> ActivationDescriptor {
        ActivationDescriptor(
            iss: o.str("iss"), sub: o.str("sub"), iat: o.int("iat"), nbf: o.int("nbf"), exp: o.int("exp"),
            ver: UInt32(o.int("ver")), activationId: o.str("activationId"), cashRegisterName: o.str("cashRegisterName"),
            deviceId: o.str("deviceId"), corporateId: o.str("corporateId"), country: o.str("country"),
            applicationPackage: o.str("applicationPackage"), features: (o["features"] as? [String]) ?? [],
            status: o.str("status"), extrasJson: jsonText(o["extras"] ?? [String: Any]()))
    }

    func testDescriptor() throws {
        let v = try load("descriptor")
        let keys = try TrustedKeys.fromJwksJson(json: jsonText(v["jwks"]!))
        let cases = v.list("cases"), jwks = v.list("jwksCases"), signing = v.list("signing")
        for c in cases {
            let name = c.str("name"), o = c.obj("options")
            let options = VerifyOptions(
                trustedTimeFloor: o.intOrNil("trustedTimeFloor"), clockToleranceSecs: o.intOrNil("clockToleranceSecs"),
                leewaySecs: o.intOrNil("leewaySecs"), expectedDeviceId: o.strOrNil("expectedDeviceId"),
                expectedApplicationPackage: o.strOrNil("expectedApplicationPackage"))
            let call = { try verifyDescriptor(jws: c.str("jws"), trustedKeys: keys, now: c.int("now"), options: options) }
            if c.bool("valid") {
                check(name) {
                    let d = try call()
                    XCTAssertTrue(same(self.descriptorJSON(d.claims), c["expected"]!), name)
                }
            } else {
                expectErr(name, c.str("error")) { _ = try call() }
            }
        }
        for c in jwks {
            let name = c.str("name"), text = jsonText(c["jwks"]!)
            if c.bool("valid") {
                check(name) { _ = try TrustedKeys.fromJwksJson(json: text) }
            } else {
                expectErr(name, c.str("error")) { _ = try TrustedKeys.fromJwksJson(json: text) }
            }
        }
        for c in signing {
            let name = c.str("name")
            check(name) {
                let key = try SigningKey.fromSeed(seed: unhex(c.str("seed")))
                XCTAssertEqual(key.kid(), c.str("kid"), name)
                XCTAssertEqual(try signDescriptor(descriptor: descriptorFrom(c.obj("claims")), key: key), c.str("jws"), name)
            }
        }
        print("descriptor: \(cases.count + jwks.count + signing.count) vectors checked")
    }

    func testReceipts() throws {
        let v = try load("receipt")
        let keys = try TrustedKeys.fromJwksJson(json: jsonText(v["jwks"]!))
        let cases = v.list("cases"), links = v.list("links")
        for c in cases {
            let name = c.str("name"), receipts = c["receipts"] as! [String], previous = c.strOrNil("previous")
            let call = { try verifyReceiptChain(receipts: receipts, trustedKeys: keys, previous: previous) }
            if c.bool("valid") {
                check(name) { XCTAssertEqual(Int64(try call().count), c.int("count"), name) }
            } else if let e = expectErr(name, c.str("error"), { _ = try call() }) {
                XCTAssertEqual(e.index.map(Int64.init), c.int("index"), name)
            }
        }
        let witnessed = v.list("witnessed")
        for c in witnessed {
            let name = c.str("name"), receipts = c["receipts"] as! [String], witness = c.str("witness")
            let call = { try verifyReceiptChainWitnessed(receipts: receipts, trustedKeys: keys, witness: witness) }
            if c.bool("valid") {
                check(name) { XCTAssertEqual(Int64(try call().count), c.int("count"), name) }
            } else {
                _ = expectErr(name, c.str("error"), { _ = try call() })
            }
        }
        let advance = v.list("advance")
        for c in advance {
            let name = c.str("name"), current = c.strOrNil("current"), received = c.str("received")
            let call = { try advancesWitness(current: current, received: received, trustedKeys: keys) }
            if c.bool("valid") {
                check(name) { XCTAssertEqual(try call(), c.bool("advances"), name) }
            } else {
                _ = expectErr(name, c.str("error"), { _ = try call() })
            }
        }
        for l in links {
            XCTAssertEqual(receiptLink(receipt: l.str("receipt")), l.str("link"))
        }
        print("receipt: \(cases.count + witnessed.count + advance.count + links.count) vectors checked")
    }

    func params(_ p: VectorCase) -> DynamicKeyParams {
        DynamicKeyParams(memoryKib: UInt32(p.int("memoryKib")), iterations: UInt32(p.int("iterations")),
                         parallelism: UInt32(p.int("parallelism")))
    }

    func testDynamicKeys() throws {
        let v = try load("dynamic_key")
        let derive = v.list("derive"), create = v.list("create"), refused = v.list("deriveRefused"), verify = v.list("verify")
        for c in derive {
            check(c.str("login")) {
                let pair = try deriveDynamicKeyPair(system: c.str("system"), login: c.str("login"),
                                                    password: c.str("password"), params: params(c.obj("params")))
                XCTAssertEqual(pair.seed(), unhex(c.str("seed")))
                XCTAssertEqual(pair.publicKey(), unhex(c.str("publicKey")))
            }
        }
        for c in create {
            check("create") {
                let pair = try DynamicKeyPair.fromSeed(system: c.str("system"), login: c.str("login"), seed: unhex(c.str("seed")))
                XCTAssertEqual(try createDynamicApiKeyWithNonce(pair: pair, now: c.int("now"), nonce: unhex(c.str("nonce"))), c.str("key"))
            }
        }
        for c in refused {
            expectErr(c.str("name"), c.str("error")) {
                _ = try deriveDynamicKeyPair(system: c.str("system"), login: c.str("login"),
                                             password: c.str("password"), params: params(c.obj("params")))
            }
        }
        for c in verify {
            let name = c.str("name")
            let call = {
                try verifyDynamicApiKey(key: c.str("key"), publicKey: unhex(c.str("publicKey")), system: c.str("system"),
                                        now: c.int("now"), windowSecs: c.int("windowSecs"))
            }
            if c.bool("valid") {
                check(name) {
                    let claims = try call(), e = c.obj("expected")
                    XCTAssertEqual(claims.login, e.str("login"), name)
                    XCTAssertEqual(claims.issuedAt, e.int("issuedAt"), name)
                    XCTAssertEqual(claims.nonce, unhex(e.str("nonce")), name)
                }
            } else {
                expectErr(name, c.str("error")) { _ = try call() }
            }
        }
        print("dynamic_key: \(derive.count + create.count + refused.count + verify.count) vectors checked")
    }

    func testServerTime() throws {
        let v = try load("server_time")
        let keys = try TrustedKeys.fromJwksJson(json: jsonText(v["jwks"]!))
        let cases = v.list("cases")
        for c in cases {
            let name = c.str("name")
            let call = { try verifyServerTime(jws: c.str("jws"), trustedKeys: keys, expectedNonce: c.strOrNil("expectedNonce")) }
            if c.bool("valid") {
                check(name) { XCTAssertEqual(try call().iat, c.int("iat"), name) }
            } else {
                expectErr(name, c.str("error")) { _ = try call() }
            }
        }
        print("server_time: \(cases.count) vectors checked")
    }

    func testGeneratedSigningKeySignsADescriptorTheAppVerifies() throws {
        let key = try generateSigningKey()
        let keys = TrustedKeys()
        XCTAssertEqual(try keys.addRawWithThumbprint(publicKey: key.publicKey()), key.kid())
        let d = descriptorFrom(VectorCase("descriptor.json signing[0] claims", try peek("descriptor").list("signing")[0].obj("claims")))
        let ok = try verifyDescriptor(jws: try signDescriptor(descriptor: d, key: key), trustedKeys: keys, now: d.nbf, options: VerifyOptions())
        XCTAssertEqual(ok.kid, key.kid())
        XCTAssertEqual(ok.claims.sub, d.sub)
    }

    /// Every way Swift prints a value: print() and interpolation (`description`),
    /// debugPrint and String(reflecting:) (`debugDescription`), and inside containers.
    func printed<T>(_ value: T) -> [String] {
        var out = ["\(value)", String(describing: value), String(reflecting: value), "\([value])", "\(["v": value])"]
        var p = ""
        print(value, to: &p)
        out.append(p)
        var d = ""
        debugPrint(value, to: &d)
        out.append(d)
        return out
    }

    func testAnActivationPrintsWithoutItsApiKey() {
        let secret = "Abcdefghij0123456789!@$SecretKey"
        let a = Activation(activationId: "act_1", productionNumber: "TG-7Q2M-K4PX", apiKey: secret,
                           status: "pending", validFrom: "2025-01-01T00:00:00Z", validTo: nil)
        for shown in printed(a) {
            XCTAssertFalse(shown.contains(secret), shown)
            for part in ["<redacted>", "act_1", "TG-7Q2M-K4PX", "pending", "2025-01-01T00:00:00Z"] {
                XCTAssertTrue(shown.contains(part), "\(part) in \(shown)")
            }
        }
        // Only printing changes: the key is there to store, and equality still holds.
        XCTAssertEqual(a.apiKey, secret)
        var b = a
        XCTAssertEqual(a, b)
        b.apiKey = "Abcdefghij0123456789!@$OtherKey"
        XCTAssertNotEqual(a, b)
    }

    func testAUrlTokenPrintsWithoutItsAccessToken() throws {
        let t = try parseUrlToken(path: "/OpenApi_1,2,3,4$R20201201134216$$Mysecrettoken/Products")
        XCTAssertEqual(t.token, "Mysecrettoken")
        for shown in printed(t) {
            XCTAssertFalse(shown.contains("Mysecrettoken"), shown)
            for part in ["<redacted>", "OpenApi", "20201201134216", "/Products"] {
                XCTAssertTrue(shown.contains(part), "\(part) in \(shown)")
            }
        }
    }
}

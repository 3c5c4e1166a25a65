// End-to-end activation against a running tillgate-server through the generated Swift
// client (async functions). Skipped unless TILLGATE_URL is set.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Tillgate

// A refund naming a transaction that does not exist: valid for core, refused by the server
// (400 invalid_transaction, field `reference`: unknown_reference).
let refundOfUnknown = #"{"type":"refund","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}],"reference":"tx_does_not_exist"}"#
let sale = #"{"type":"sale","currency":"SEK","total":12500,"vat":[{"rate":2500,"amount":2500}],"items":[{"name":"Kaffe","quantity":1,"amount":12500}]}"#

final class E2eTests: XCTestCase {
    let env = ProcessInfo.processInfo.environment

    func approve(_ url: String, _ activationId: String) throws {
        var req = URLRequest(url: URL(string: "\(url)/admin/activations/\(activationId)/approve")!)
        req.httpMethod = "POST"
        req.setValue("Bearer \(env["TILLGATE_ADMIN_KEY"]!)", forHTTPHeaderField: "Authorization")
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.httpBody = Data("{}".utf8)
        let done = DispatchSemaphore(value: 0)
        var status = 0
        URLSession.shared.dataTask(with: req) { _, response, _ in
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            done.signal()
        }.resume()
        done.wait()
        XCTAssertEqual(status, 200)
    }

    func testActivationHandshakeCodeAndTransaction() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let url = env["TILLGATE_URL"]!
        let keys = try TrustedKeys.fromJwksJson(json: env["TILLGATE_JWKS"]!)
        let device = "swift-\(UInt64.random(in: 0..<UInt64.max))"
        let client = try Client(config: ClientConfig(baseUrl: url, deviceId: device), trustedKeys: keys)
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        let today = Date()
        let activation = try await client.activate(request: ActivationRequest(
            cashRegisterName: "Kassa Swift", deviceId: device,
            validFrom: "\(f.string(from: today))T00:00:00Z",
            validTo: "\(f.string(from: today.addingTimeInterval(180 * 86400)))T00:00:00Z",
            corporateId: "556036-0793", applicationPackage: "com.example.pos"))
        XCTAssertEqual(activation.status, "pending")
        // A key the server issued: printing the activation never shows it.
        XCTAssertFalse("\(activation)".contains(activation.apiKey))
        XCTAssertFalse(String(reflecting: activation).contains(activation.apiKey))
        XCTAssertTrue("\(activation)".contains(activation.productionNumber))

        do {
            _ = try await client.handshake()
            XCTFail("handshake before approval succeeded")
        } catch let TillgateError.Failed(code, _, _, _, _, _, _, _, _, _) {
            XCTAssertEqual(code, "pending_approval")
        }

        try approve(url, activation.activationId)
        let hs = try await client.handshake()
        XCTAssertEqual(hs.status, "approved")
        XCTAssertEqual(client.trustedTimeFloor(), hs.serverTime)

        let now = unixTimeMs() / 1000
        let code = try await client.activationCode(now: now)
        XCTAssertEqual(code.descriptor.claims.deviceId, device)
        XCTAssertEqual(try client.verifyStoredDescriptor(jws: code.jws, now: now).claims.sub, activation.productionNumber)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(device)").path
        let outbox = try await Outbox.openDirectory(directory: dir)
        let result = try await outbox.submit(client: client, transaction: try transactionFromJson(json: sale),
                                             idempotencyKey: nil, nowMs: unixTimeMs())
        guard case let .sent(stored) = result else { return XCTFail("not sent: \(result)") }
        XCTAssertEqual(try verifyReceiptChain(receipts: [stored.receipt], trustedKeys: keys)[0].seq, 1)
        XCTAssertEqual(outbox.len(), 0)
        let got = try await client.getTransaction(id: stored.id)
        XCTAssertEqual(got.receipt, stored.receipt)
        XCTAssertEqual(got.transaction.total, 12500)
        // The register's kept receipt is its witness of the server's history.
        let history = try await client.verifyHistory(witness: stored.receipt)
        XCTAssertEqual(history.receipts.map { $0.seq }, [1])
        XCTAssertEqual(history.transactions[0].receipt, stored.receipt)
        let everything = try await client.verifyHistory()
        XCTAssertEqual(everything.transactions.count, 1)
        let since = try await client.verifyHistorySince(witness: stored.receipt)
        XCTAssertEqual(since.receipts.map { $0.seq }, [1])
        do {
            _ = try await client.verifyHistory(witness: "not.a.receipt")
            XCTFail("a witness that is not a receipt was accepted")
        } catch let TillgateError.Failed(code, _, _, _, _, _, _, _, _, _) {
            XCTAssertEqual(code, "invalid_witness")
        }
        // The outbox keeps that receipt as the register's witness, with its queue.
        XCTAssertEqual(outbox.witness(), stored.receipt)
        XCTAssertNil(outbox.witnessProblem())
        let checked = try await outbox.verifyHistory(client: client)
        XCTAssertEqual(checked.receipts.map { $0.seq }, [1])
        let checkedSince = try await outbox.verifyHistorySince(client: client)
        XCTAssertEqual(checkedSince.receipts.map { $0.seq }, [1])
        // One outbox per queue directory: a second one is refused while this one lives.
        do {
            _ = try await Outbox.openDirectory(directory: dir)
            XCTFail("a second outbox opened the same directory")
        } catch let TillgateError.Failed(code, _, _, _, _, _, _, _, _, _) {
            XCTAssertEqual(code, "queue_in_use")
        }
        try await outbox.resetWitness()
        XCTAssertNil(outbox.witness())
        _ = try await outbox.verifyHistory(client: client)
        XCTAssertEqual(outbox.witness(), stored.receipt)
        // A witness the app kept itself is adopted only when the outbox keeps none.
        let pn = activation.productionNumber
        let again = try await outbox.adoptWitness(client: client, receipt: stored.receipt, productionNumber: pn)
        XCTAssertFalse(again)
        try await outbox.resetWitness()
        do {
            _ = try await outbox.adoptWitness(client: client, receipt: stored.receipt, productionNumber: "TG-OTHR-0001")
            XCTFail("another register's receipt was adopted")
        } catch let TillgateError.Failed(code, _, _, _, _, _, _, _, _, _) {
            XCTAssertEqual(code, "invalid_witness")
        }
        let adopted = try await outbox.adoptWitness(client: client, receipt: stored.receipt, productionNumber: pn)
        XCTAssertTrue(adopted)
        XCTAssertEqual(outbox.witness(), stored.receipt)
        print("e2e: activated \(activation.productionNumber), approved, verified, sold")
    }

    /// Midnight UTC `d` days from today, RFC 3339.
    func day(_ d: Int) -> String {
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return "\(f.string(from: Date().addingTimeInterval(Double(d) * 86400)))T00:00:00Z"
    }

    func newClient(_ device: String) throws -> Client {
        let keys = try TrustedKeys.fromJwksJson(json: env["TILLGATE_JWKS"]!)
        return try Client(config: ClientConfig(baseUrl: env["TILLGATE_URL"]!, deviceId: device), trustedKeys: keys)
    }

    /// A new register valid until `validTo`, approved; its client has the key.
    func approvedRegister(_ device: String, validTo: String) async throws -> (Client, Activation) {
        let client = try newClient(device)
        let activation = try await client.activate(request: ActivationRequest(
            cashRegisterName: "Kassa Swift", deviceId: device, validFrom: day(0), validTo: validTo,
            corporateId: "556036-0793", applicationPackage: "com.example.pos"))
        try approve(env["TILLGATE_URL"]!, activation.activationId)
        let hs = try await client.handshake()
        XCTAssertEqual(hs.status, "approved")
        return (client, activation)
    }

    /// The code and failing fields of the error `call` throws (nil if it does not).
    func failure<T>(_ call: () async throws -> T) async -> (code: String, fields: [String])? {
        do {
            _ = try await call()
            return nil
        } catch let TillgateError.Failed(code, _, fields, _, _, _, _, _, _, _) {
            return (code, fields.map { $0.field })
        } catch {
            return ("unexpected \(error)", [])
        }
    }

    /// Moves the server's wall clock (libfaketime offset, see bindings/test-common.sh).
    func serverClock(_ offset: String) throws {
        try "\(offset)\n".write(toFile: env["TILLGATE_SERVER_CLOCK"]!, atomically: false, encoding: .utf8)
    }

    func testExpiredKeyIsRenewedAndTheOldKeyStopsWorking() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        try XCTSkipUnless(env["TILLGATE_SERVER_CLOCK"] != nil, "no TILLGATE_SERVER_CLOCK: the server's clock cannot move")
        let device = "swift-renew-\(UInt64.random(in: 0..<UInt64.max))"
        let (client, activation) = try await approvedRegister(device, validTo: day(1))
        let oldKey = client.apiKey()!
        let renewal = { (from: String, to: String) in
            RenewRequest(productionNumber: activation.productionNumber, deviceId: device, validFrom: from, validTo: to)
        }
        var newKey = ""
        do {
            defer { try? serverClock("+0") }
            try serverClock("+2d") // the key's period (until tomorrow midnight) is over
            let expired = await failure { try await client.handshake() }
            XCTAssertEqual(expired?.code, "key_expired")
            // A period that does not end after the current one: the server's fields come through.
            let refused = await failure { try await client.renew(request: renewal(day(0), day(1))) }
            XCTAssertEqual(refused?.code, "invalid_renewal_request")
            XCTAssertEqual(refused?.fields, ["validTo"])
            XCTAssertEqual(client.apiKey(), oldKey)
            let renewed = try await client.renew(request: renewal(day(0), day(181)))
            XCTAssertEqual(renewed.status, "approved")
            XCTAssertEqual(renewed.activationId, activation.activationId)
            XCTAssertNotEqual(renewed.apiKey, oldKey)
            XCTAssertEqual(client.apiKey(), renewed.apiKey)
            let hs = try await client.handshake()
            XCTAssertEqual(hs.validTo, day(181))
            let old = try newClient(device)
            try old.setApiKey(key: oldKey)
            let replaced = await failure { try await old.handshake() }
            XCTAssertEqual(replaced?.code, "key_replaced")
            newKey = renewed.apiKey
        }
        // Back at today (a fresh client: this one trusts the server time two days on), the
        // renewed key works and the signed activation code carries the new period.
        let after = try newClient(device)
        try after.setApiKey(key: newKey)
        let now = unixTimeMs() / 1000
        let hs = try await after.handshake()
        XCTAssertLessThan(abs(hs.serverTime - now), 600)
        let code = try await after.activationCode(now: now)
        XCTAssertEqual(code.descriptor.claims.exp, now / 86400 * 86400 + 181 * 86400)
    }

    func testRenewalWithTheStoredDescriptorWaitsForApprovalAgain() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let device = "swift-lost-\(UInt64.random(in: 0..<UInt64.max))"
        let (client, activation) = try await approvedRegister(device, validTo: day(10)) // within the renewal window
        let jws = try await client.activationCode(now: unixTimeMs() / 1000).jws
        // The device lost its key: a fresh client proves itself with the stored descriptor.
        let fresh = try newClient(device)
        let renewed = try await fresh.renewWithDescriptor(
            request: RenewRequest(productionNumber: activation.productionNumber, deviceId: device,
                                  validFrom: day(0), validTo: day(190)),
            descriptorJws: jws)
        XCTAssertEqual(renewed.status, "pending")
        XCTAssertEqual(fresh.apiKey(), renewed.apiKey)
        let pending = await failure { try await fresh.handshake() }
        XCTAssertEqual(pending?.code, "pending_approval")
        let replaced = await failure { try await client.handshake() }
        XCTAssertEqual(replaced?.code, "key_replaced")
        try approve(env["TILLGATE_URL"]!, activation.activationId)
        let hs = try await fresh.handshake()
        XCTAssertEqual(hs.validTo, day(190))
    }

    /// What an app decides on, beside the code (nil if `call` does not throw).
    struct Decision: Equatable {
        let code: String
        let httpStatus: UInt16?
        let retryAfterMs: UInt64?
        let transient: Bool
        let auth: Bool
    }

    func decision<T>(_ call: () async throws -> T) async -> Decision? {
        do {
            _ = try await call()
            return nil
        } catch let TillgateError.Failed(code, _, _, _, _, _, httpStatus, retryAfterMs, transient, auth) {
            return Decision(code: code, httpStatus: httpStatus, retryAfterMs: retryAfterMs, transient: transient, auth: auth)
        } catch {
            return Decision(code: "unexpected \(error)", httpStatus: nil, retryAfterMs: nil, transient: false, auth: false)
        }
    }

    func testAPendingRegistrationIsAnAuthErrorNotATransientOne() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let device = "swift-pending-\(UInt64.random(in: 0..<UInt64.max))"
        let client = try newClient(device)
        _ = try await client.activate(request: ActivationRequest(
            cashRegisterName: "Kassa Swift", deviceId: device, validFrom: day(0), validTo: day(180),
            corporateId: "556036-0793", applicationPackage: "com.example.pos"))
        let e = await decision { try await client.handshake() }
        XCTAssertEqual(e, Decision(code: "pending_approval", httpStatus: 403, retryAfterMs: nil, transient: false, auth: true))
    }

    func testAnActivationRepeatedWithItsKeyAnswersTheSameRegistration() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let device = "swift-repeat-\(UInt64.random(in: 0..<UInt64.max))"
        func request(_ d: String) -> ActivationRequest {
            ActivationRequest(
                cashRegisterName: "Kassa Swift", deviceId: d, validFrom: day(0), validTo: day(180),
                corporateId: "556036-0793", applicationPackage: "com.example.pos")
        }
        let key = UUID().uuidString
        let first = try await newClient(device).activateWithKey(request: request(device), idempotencyKey: key)
        // The answer was lost; a moment later the app sends the same request with the key
        // it stored (keys issued before the repeat reached the server stop working).
        try await Task.sleep(nanoseconds: 1_100_000_000)
        let client = try newClient(device)
        let again = try await client.activateWithKey(request: request(device), idempotencyKey: key)
        XCTAssertEqual(again.activationId, first.activationId)
        XCTAssertEqual(again.productionNumber, first.productionNumber)
        XCTAssertNotEqual(again.apiKey, first.apiKey)
        let pending = await decision { try await client.handshake() }
        XCTAssertEqual(pending?.code, "pending_approval")
        let stale = try newClient(device)
        try stale.setApiKey(key: first.apiKey)
        let unknown = await decision { try await stale.handshake() }
        XCTAssertEqual(unknown?.code, "invalid_credentials")
        // The key names one request; a guessable key is refused before sending.
        let reused = await decision { try await client.activateWithKey(request: request(device + "-other"), idempotencyKey: key) }
        XCTAssertEqual(reused, Decision(code: "idempotency_key_reused", httpStatus: 422, retryAfterMs: nil, transient: false, auth: false))
        let short = await decision { try await client.activateWithKey(request: request(device), idempotencyKey: "receipt-42") }
        XCTAssertEqual(short?.code, "invalid_idempotency_key")
        XCTAssertNil(short?.httpStatus)
        // Once approved, the key is not issued again.
        try approve(env["TILLGATE_URL"]!, again.activationId)
        let decided = await decision { try await client.activateWithKey(request: request(device), idempotencyKey: key) }
        XCTAssertEqual(decided, Decision(code: "activation_not_repeatable", httpStatus: 409, retryAfterMs: nil, transient: false, auth: false))
        let hs = try await client.handshake()
        XCTAssertEqual(hs.status, "approved")
    }

    func testAnUnreachableServerIsTransientWithoutAStatus() async throws {
        try XCTSkipUnless(env["TILLGATE_JWKS"] != nil, "no TILLGATE_JWKS: no server keys")
        let keys = try TrustedKeys.fromJwksJson(json: env["TILLGATE_JWKS"]!)
        let offline = try Client(config: ClientConfig(baseUrl: "http://127.0.0.1:9", timeoutMs: 1000), trustedKeys: keys)
        try offline.setApiKey(key: "Abcdefghij0123456789!@$")
        let got = await decision { try await offline.handshake() }
        let e = try XCTUnwrap(got)
        XCTAssertTrue(["network", "timeout"].contains(e.code), e.code)
        XCTAssertEqual(e, Decision(code: e.code, httpStatus: nil, retryAfterMs: nil, transient: true, auth: false))
    }

    func testAServerBeingUpgradedIsTransientAndSaysWhenToTryAgain() async throws {
        // A stub the test script runs: every request answered 503 schema_newer with
        // Retry-After: 7.
        try XCTSkipUnless(env["TILLGATE_STUB_503_URL"] != nil, "no TILLGATE_STUB_503_URL: no stub server")
        try XCTSkipUnless(env["TILLGATE_JWKS"] != nil, "no TILLGATE_JWKS: no server keys")
        let keys = try TrustedKeys.fromJwksJson(json: env["TILLGATE_JWKS"]!)
        let stub = try Client(config: ClientConfig(baseUrl: env["TILLGATE_STUB_503_URL"]!, timeoutMs: 5000), trustedKeys: keys)
        try stub.setApiKey(key: "Abcdefghij0123456789!@$")
        let e = await decision { try await stub.handshake() }
        XCTAssertEqual(e, Decision(code: "schema_newer", httpStatus: 503, retryAfterMs: 7000, transient: true, auth: false))
    }

    func testASaleTheServerRefusesIsKeptAsFailedWithItsFields() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let (client, _) = try await approvedRegister("swift-refused-\(UInt64.random(in: 0..<UInt64.max))", validTo: day(180))
        let outbox = try await Outbox.openInMemory()
        // Core accepts it (a well-formed reference); the server knows no such transaction.
        let refund = try transactionFromJson(json: refundOfUnknown)
        try validateTransaction(transaction: refund)
        let result = try await outbox.submit(client: client, transaction: refund, idempotencyKey: "swift-refund-0001", nowMs: unixTimeMs())
        guard case let .refused(key, error) = result else { return XCTFail("not refused: \(result)") }
        XCTAssertEqual(key, "swift-refund-0001")
        XCTAssertEqual(error.code, "invalid_transaction")
        XCTAssertEqual(error.httpStatus, 400)
        XCTAssertEqual(error.fields.map { [$0.field, $0.code] }, [["reference", "unknown_reference"]])
        // Kept, marked failed (not pending).
        let entries = outbox.entries()
        XCTAssertEqual(entries.count, 1)
        XCTAssertEqual(entries.first?.idempotencyKey, "swift-refund-0001")
        XCTAssertEqual(entries.first?.failed, true)
        XCTAssertEqual(entries.first?.lastError?.code, "invalid_transaction")
        XCTAssertEqual(entries.first?.lastError?.fields.map { $0.field }, ["reference"])
        XCTAssertEqual(outbox.len(), 0)
        // The same key again answers the refusal again; nothing new is kept.
        let again = try await outbox.submit(client: client, transaction: refund, idempotencyKey: "swift-refund-0001", nowMs: unixTimeMs())
        guard case let .refused(_, againError) = again else { return XCTFail("not refused again: \(again)") }
        XCTAssertEqual(againError.code, "invalid_transaction")
        XCTAssertEqual(outbox.entries().count, 1)
    }

    func testProductsPutAndDeltaSync() async throws {
        try XCTSkipUnless(env["TILLGATE_URL"] != nil, "no TILLGATE_URL: no server to test against")
        let (client, _) = try await approvedRegister("swift-products-\(UInt64.random(in: 0..<UInt64.max))", validTo: day(180))
        let kaffe = try await client.putProduct(product: Product(id: "sw-kaffe", name: "Kaffe", price: 2500, currency: "SEK", vatRate: 1200))
        XCTAssertNotNil(kaffe.updatedAt)
        XCTAssertTrue(kaffe.active)
        _ = try await client.putProduct(product: Product(id: "sw-bulle", name: "Bulle", price: 3000, currency: "SEK",
                                                         vatRate: 1200, barcode: "7310000000017"))
        // Changes come in the order they were made (the RVE is a version, no waiting).
        let first = try await client.syncProducts(rve: nil)
        XCTAssertEqual(first.products.map { $0.id }, ["sw-kaffe", "sw-bulle"])
        XCTAssertEqual(first.products[1].barcode, "7310000000017")
        XCTAssertFalse(first.more)
        let rve = try XCTUnwrap(first.rve)
        _ = try await client.putProduct(product: Product(id: "sw-te", name: "Te", price: 2000, currency: "SEK", vatRate: 1200))
        var bulle = first.products[1]
        bulle.active = false // withdrawn
        _ = try await client.putProduct(product: bulle)
        let delta = try await client.syncProducts(rve: rve)
        XCTAssertEqual(delta.products.map { $0.id }, ["sw-te", "sw-bulle"]) // not Kaffe
        XCTAssertFalse(delta.products[1].active)
        XCTAssertFalse(delta.more)
        XCTAssertGreaterThan(try XCTUnwrap(delta.rve), rve)
    }
}

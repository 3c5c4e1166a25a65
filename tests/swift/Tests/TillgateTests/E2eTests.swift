// End-to-end activation against a running tillgate-server through the generated Swift
// client (async functions). Skipped unless TILLGATE_URL is set.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Tillgate

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

        do {
            _ = try await client.handshake()
            XCTFail("handshake before approval succeeded")
        } catch let TillgateError.Failed(code, _, _, _, _, _) {
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
        print("e2e: activated \(activation.productionNumber), approved, verified, sold")
    }
}

package dev.tillgate.sample

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Base64

/** The srv4pos "protection against malware usage" start-up check. */
class StartupGuardTest {
    private val now = TestKeys.NOW
    private fun guard(store: KeyValueStore) = StartupGuard(store, TestKeys.trusted(), "device-1", "com.example.pos")
    private fun storeWith(jws: String) = MemoryStore().apply { put(Keys.DESCRIPTOR, jws) }
    private fun refusal(jws: String, store: KeyValueStore = storeWith(jws)): String {
        val d = guard(store).check(now)
        assertTrue("expected a refusal, got $d", d is StartupDecision.Refuse)
        return (d as StartupDecision.Refuse).code
    }

    @Test fun withoutADescriptorTheActivationScreenIsShown() {
        assertEquals(StartupDecision.NotActivated, guard(MemoryStore()).check(now))
    }

    @Test fun aGenuineDescriptorLetsTheAppRun() {
        val d = guard(storeWith(TestKeys.descriptor())).check(now)
        assertTrue("$d", d is StartupDecision.Run)
        d as StartupDecision.Run
        assertEquals("TG-TEST-0001", d.descriptor.sub)
        assertEquals(TestKeys.server.kid(), d.kid)
    }

    @Test fun aModifiedDescriptorIsRefused() {
        val (h, p, s) = TestKeys.descriptor().split(".")
        val bytes = Base64.getUrlDecoder().decode(p)
        val i = String(bytes).indexOf("Kassa")
        bytes[i] = (bytes[i].toInt() xor 1).toByte() // "Kassa" -> "Jassa"
        val tampered = "$h.${Base64.getUrlEncoder().withoutPadding().encodeToString(bytes)}.$s"
        assertEquals("bad_signature", refusal(tampered))
    }

    @Test fun aDescriptorOfAnotherDeviceIsRefused() {
        assertEquals("device_mismatch", refusal(TestKeys.descriptor(deviceId = "device-2")))
    }

    @Test fun aDescriptorOfAnotherAppIsRefused() {
        assertEquals("application_package_mismatch", refusal(TestKeys.descriptor(app = "com.evil.pos")))
    }

    @Test fun anExpiredDescriptorIsRefused() {
        assertEquals("expired", refusal(TestKeys.descriptor(nbf = now - 400 * 86_400L, exp = now - 30 * 86_400L)))
    }

    @Test fun aDescriptorNotYetValidIsRefused() {
        assertEquals("not_yet_valid", refusal(TestKeys.descriptor(nbf = now + 10 * 86_400L, exp = now + 300 * 86_400L)))
    }

    @Test fun aClockTurnedBackIsRefused() {
        val store = storeWith(TestKeys.descriptor()).apply { put(Keys.TRUSTED_TIME_FLOOR, (now + 2 * 86_400L).toString()) }
        assertEquals("clock_rolled_back", refusal("", store))
    }

    @Test fun aDescriptorSignedByAnUnknownKeyIsRefused() {
        assertEquals("unknown_kid", refusal(TestKeys.descriptor(key = TestKeys.other)))
    }

    @Test fun garbageIsRefused() {
        assertEquals("malformed_jws", refusal("not a descriptor"))
    }
}

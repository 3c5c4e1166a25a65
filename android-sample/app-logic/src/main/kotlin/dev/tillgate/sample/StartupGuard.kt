package dev.tillgate.sample

import dev.tillgate.ActivationDescriptor
import dev.tillgate.TillgateException
import dev.tillgate.TrustedKeys
import dev.tillgate.VerifyOptions
import dev.tillgate.verifyDescriptor

/** What the app may do at start. */
sealed class StartupDecision {
    /** No descriptor stored yet: show the activation screen. */
    object NotActivated : StartupDecision() { override fun toString() = "NotActivated" }

    /** The stored descriptor is genuine, for this device and app, and valid now. */
    data class Run(val descriptor: ActivationDescriptor, val kid: String) : StartupDecision()

    /** The stored descriptor fails: the app refuses to run (srv4pos "protection against malware usage"). */
    data class Refuse(val code: String, val reason: String) : StartupDecision()
}

/**
 * The check the app runs at every start, offline: the server-signed ActivationDescriptor
 * kept next to the app's data must verify with the public keys built into the app, name
 * this device and this application, be valid now, and the clock must not have been turned
 * back behind the last signed server time. A modified local database cannot fake it.
 */
class StartupGuard(
    private val store: KeyValueStore,
    private val trustedKeys: TrustedKeys,
    private val deviceId: String,
    private val applicationPackage: String,
) {
    fun check(nowSecs: Long): StartupDecision {
        val jws = store.get(Keys.DESCRIPTOR) ?: return StartupDecision.NotActivated
        val options = VerifyOptions(
            trustedTimeFloor = store.get(Keys.TRUSTED_TIME_FLOOR)?.toLongOrNull(),
            expectedDeviceId = deviceId,
            expectedApplicationPackage = applicationPackage,
        )
        return try {
            val v = verifyDescriptor(jws, trustedKeys, nowSecs, options)
            if (v.claims.status != "approved") {
                StartupDecision.Refuse("not_approved", "the descriptor's status is ${v.claims.status}")
            } else {
                StartupDecision.Run(v.claims, v.kid)
            }
        } catch (e: TillgateException.Failed) {
            StartupDecision.Refuse(e.code, e.reason)
        }
    }
}

package dev.tillgate.sample

import dev.tillgate.ActivationRequest
import dev.tillgate.CorporateIdRule
import dev.tillgate.TillgateException
import dev.tillgate.validateActivationRequest
import java.time.LocalDate
import java.time.ZoneOffset

/**
 * The activation screen's state: what the user types (register name, company, period),
 * what the device knows (device id, package). [errors] is computed by core on every
 * change, one message per failing field, to show next to that field.
 */
class ActivationScreen(val deviceId: String, val applicationPackage: String, today: LocalDate = LocalDate.now(ZoneOffset.UTC)) {
    var cashRegisterName: String = ""
    var corporateId: String = ""
    var country: String = "SE"
    var validFrom: String = "${today}T00:00:00Z"
    var validTo: String = "${today.plusDays(365)}T00:00:00Z"

    fun request() = ActivationRequest(
        cashRegisterName = cashRegisterName,
        deviceId = deviceId,
        validFrom = validFrom,
        validTo = validTo,
        corporateId = corporateId,
        applicationPackage = applicationPackage,
        country = country,
    )

    /** Field name (camelCase, as on the wire) to its messages; empty when valid. */
    fun errors(): Map<String, List<String>> = try {
        validateActivationRequest(request(), CorporateIdRule.SWEDISH_ORG_NUMBER)
        emptyMap()
    } catch (e: TillgateException.Failed) {
        if (e.fields.isEmpty()) mapOf("" to listOf(e.reason))
        else e.fields.groupBy({ it.field }, { it.message })
    }

    val isValid: Boolean get() = errors().isEmpty()
}

package dev.tillgate.sample

import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.time.LocalDate

class ActivationScreenTest {
    private fun screen() = ActivationScreen("device-1", "com.example.pos", LocalDate.of(2026, 1, 1)).apply {
        cashRegisterName = "Kassa 1"
        corporateId = "556036-0793"
    }

    @Test fun aFilledInFormIsValid() {
        assertEquals(emptyMap<String, List<String>>(), screen().errors())
        assertEquals("2026-01-01T00:00:00Z", screen().validFrom)
        assertEquals("2027-01-01T00:00:00Z", screen().validTo)
    }

    @Test fun everyBadFieldIsReportedUnderItsOwnName() {
        val s = screen().apply {
            cashRegisterName = ""
            corporateId = "556036-0794"
            validFrom = "2026-01-01T12:00:00Z"
            country = "Sweden"
        }
        val e = s.errors()
        assertEquals(setOf("cashRegisterName", "corporateId", "validFrom", "country"), e.keys)
        assertTrue(e.getValue("corporateId").single().contains("Luhn"))
        assertTrue(e.getValue("validFrom").single().contains("midnight"))
    }

    @Test fun aPeriodLongerThanAYearIsReportedOnValidTo() {
        val e = screen().apply { validTo = "2027-01-02T00:00:00Z" }.errors()
        assertEquals(setOf("validTo"), e.keys)
    }

    @Test fun anInvalidFormIsNotSent() = runBlocking {
        FakeTillgateServer().use { server ->
            val app = TillApp.open(MemoryStore(), server.url, TestKeys.trusted(), "device-1", "com.example.pos", tempDir("queue")) { TestKeys.NOW }
            try {
                app.register(app.newActivationScreen())
                fail("an empty form must not register")
            } catch (e: InvalidForm) {
                assertTrue(e.errors.containsKey("cashRegisterName"))
            }
            assertEquals(false, app.isRegistered)
        }
    }
}

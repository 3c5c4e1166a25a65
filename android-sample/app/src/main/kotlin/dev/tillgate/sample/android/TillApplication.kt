package dev.tillgate.sample.android

import android.app.Application
import dev.tillgate.sample.Sale
import kotlinx.coroutines.Job
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.flow.MutableStateFlow

/**
 * The process's state that outlives every Activity. A sale runs in [scope], not in an
 * Activity's: a rotation (or any Activity destroyed) does not cancel it, and its result
 * waits in [saleResult] for the Activity on screen to show it.
 */
class TillApplication : Application() {
    /** Never cancelled: it lives as long as the process. */
    val scope = MainScope()

    /** The sale being sent, if any (one at a time). */
    var saleJob: Job? = null

    /** The latest sale's outcome not yet shown (null once shown); a failure means it was not kept. */
    val saleResult = MutableStateFlow<Result<Sale>?>(null)
}

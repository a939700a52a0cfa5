package kotlinx.coroutines.flow

/*
 * The core of kotlinx.coroutines' Flow (1.3's public signatures: Flow, FlowCollector, flow {}, collect,
 * catch, toList) for a kotlinx-coroutines-core that predates it (Debian's 1.0.1), so code that collects
 * Conversation.sendMessageAsync as a Flow compiles and runs. It goes on the classpath only where the
 * coroutines jar has no kotlinx.coroutines.flow.Flow of its own (`pocketlm config --classpath`).
 */

interface FlowCollector<in T> {
  suspend fun emit(value: T)
}

interface Flow<out T> {
  suspend fun collect(collector: FlowCollector<T>)
}

fun <T> flow(block: suspend FlowCollector<T>.() -> Unit): Flow<T> = object : Flow<T> {
  override suspend fun collect(collector: FlowCollector<T>) {
    collector.block()
  }
}

suspend inline fun <T> Flow<T>.collect(crossinline action: suspend (value: T) -> Unit) {
  collect(object : FlowCollector<T> {
    override suspend fun emit(value: T) {
      action(value)
    }
  })
}

/** Catches what the upstream flow throws (not what the collector downstream throws) and runs action on it. */
fun <T> Flow<T>.catch(action: suspend FlowCollector<T>.(cause: Throwable) -> Unit): Flow<T> {
  val upstream = this
  return flow {
    val downstream = this
    var thrownBelow: Throwable? = null
    try {
      upstream.collect(object : FlowCollector<T> {
        override suspend fun emit(value: T) {
          try {
            downstream.emit(value)
          } catch (e: Throwable) {
            thrownBelow = e
            throw e
          }
        }
      })
    } catch (e: Throwable) {
      if (e === thrownBelow) throw e
      downstream.action(e)
    }
  }
}

suspend fun <T> Flow<T>.toList(): List<T> {
  val out = ArrayList<T>()
  collect { out.add(it) }
  return out
}

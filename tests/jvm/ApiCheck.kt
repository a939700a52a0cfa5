// A Kotlin program written against MediaPipe's Android LLM Inference API only
// (plus pocketlm.HostContext for the Context), run by tests/jvm/test_jvm_bridge.py:
//   ApiCheck MODE MODEL [MAX_TOKENS TOPK TEMPERATURE SEED PROFILE PROMPT1 PROMPT2]
// It prints records "KEY value" ending with \u001e; an exception prints "ERROR <class>: <message>".
import android.content.Context
import com.google.mediapipe.tasks.genai.llminference.LlmInference
import com.google.mediapipe.tasks.genai.llminference.LlmInferenceSession
import com.google.mediapipe.tasks.genai.llminference.ProgressListener
import com.google.mediapipe.tasks.genai.llminference.PromptTemplates
import pocketlm.HostContext
import pocketlm.NativeBridge
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess

// kotlin.AutoCloseable.use lives in kotlin-stdlib-jdk7; this program needs only the base stdlib
inline fun <T : AutoCloseable, R> T.use(block: (T) -> R): R {
    try {
        return block(this)
    } finally {
        close()
    }
}

fun out(key: String, value: Any?) {
    print("$key $value\u001e")
    System.out.flush()
}

fun rssKb(): Long =
    java.io.File("/proc/self/status").readLines().first { it.startsWith("VmRSS:") }.split(Regex("\\s+"))[1].toLong()

fun options(model: String, maxTokens: Int, topK: Int, temperature: Float, seed: Int) =
    LlmInference.LlmInferenceOptions.builder()
        .setModelPath(model).setMaxTokens(maxTokens).setTopK(topK).setMaxTopK(maxOf(topK, 40))
        .setTemperature(temperature).setRandomSeed(seed).build()

fun sessionOptions(topK: Int, temperature: Float, seed: Int) =
    LlmInferenceSession.LlmInferenceSessionOptions.builder()
        .setTopK(topK).setTemperature(temperature).setRandomSeed(seed).build()

fun main(args: Array<String>) {
    val mode = args[0]
    val model = args[1]
    val maxTokens = args.getOrElse(2) { "256" }.toInt()
    val topK = args.getOrElse(3) { "1" }.toInt()
    val temperature = args.getOrElse(4) { "0" }.toFloat()
    val seed = args.getOrElse(5) { "0" }.toInt()
    val profile = args.getOrElse(6) { "-" }.let { if (it == "-") null else it }
    val prompt1 = args.getOrElse(7) { "What is the capital of France?" }
    val prompt2 = args.getOrElse(8) { "And of Italy?" }
    val context: Context = HostContext(profile)
    try {
        when (mode) {
            "generate" -> LlmInference.createFromOptions(context, options(model, maxTokens, topK, temperature, seed)).use { llm ->
                out("SIZE", llm.sizeInTokens(prompt1))
                out("SYNC", llm.generateResponse(prompt1))
                // the async form, pieces in order, done last, on a JVM thread
                val pieces = StringBuilder()
                var calls = 0
                var afterDone = 0
                var done = false
                var threadName = ""
                val latch = CountDownLatch(1)
                val future = llm.generateResponseAsync(prompt1, ProgressListener<String> { partial, isDone ->
                    if (done) afterDone++
                    calls++
                    pieces.append(partial)
                    threadName = Thread.currentThread().name
                    if (isDone) { done = true; latch.countDown() }
                })
                out("FUTURE", future.get(120, TimeUnit.SECONDS))
                latch.await(120, TimeUnit.SECONDS)
                out("PIECES", pieces)
                out("CALLS", "$calls $afterDone")
                out("THREAD", threadName)
            }
            "lora" -> { // PROMPT2 is a LoRA adapter: for the LlmInference's own responses, for a session naming it,
                // for a session naming none (which inherits it); then the base model from an LlmInference without
                // one; texts as hex of their UTF-8 (a tiny random model writes any byte, \u001e too)
                fun hex(t: String) = t.toByteArray(Charsets.UTF_8).joinToString("") { String.format("%02x", it) }
                val withLora = LlmInference.LlmInferenceOptions.builder().setModelPath(model).setMaxTokens(maxTokens)
                    .setTopK(topK).setTemperature(temperature).setRandomSeed(seed).setLoraPath(prompt2).build()
                LlmInference.createFromOptions(context, withLora).use { llm ->
                    out("IMPLICIT", hex(llm.generateResponse(prompt1)))
                    val lora = LlmInferenceSession.LlmInferenceSessionOptions.builder().setTopK(topK)
                        .setTemperature(temperature).setRandomSeed(seed).setLoraPath(prompt2).build()
                    LlmInferenceSession.createFromOptions(llm, lora).use { s ->
                        s.addQueryChunk(prompt1)
                        out("SESSION", hex(s.generateResponse()))
                    }
                    LlmInferenceSession.createFromOptions(llm, sessionOptions(topK, temperature, seed)).use { s ->
                        s.addQueryChunk(prompt1)
                        out("INHERITED", hex(s.generateResponse()))
                    }
                }
                LlmInference.createFromOptions(context, withLora.toBuilder().setLoraPath(null).build()).use { llm ->
                    LlmInferenceSession.createFromOptions(llm, sessionOptions(topK, temperature, seed)).use { s ->
                        s.addQueryChunk(prompt1)
                        out("BASE", hex(s.generateResponse()))
                    }
                }
                val bad = withLora.toBuilder().setLoraPath(model).build()
                try {
                    LlmInference.createFromOptions(context, bad).close()
                    out("BAD", "accepted")
                } catch (e: RuntimeException) {
                    out("BAD", "${e.javaClass.simpleName}: ${e.message}")
                }
                out("LIVE", NativeBridge.liveObjects())
            }
            "text" -> LlmInference.createFromOptions(context, options(model, maxTokens, topK, temperature, seed)).use { llm ->
                // a broken UTF-16 string (a lone high surrogate at index 2): every text entry point refuses it,
                // naming the index; PROMPT2 is the hex of valid UTF-8 text (with emoji: surrogate pairs in a String)
                val broken = "ab" + '\uD800' + "c"
                val valid = String(prompt2.chunked(2).map { it.toInt(16).toByte() }.toByteArray(), Charsets.UTF_8)
                fun refused(key: String, call: () -> Unit) = try {
                    call()
                    out(key, "accepted")
                } catch (e: IllegalArgumentException) {
                    out(key, e.message)
                }
                refused("GENERATE") { llm.generateResponse(broken) }
                refused("ASYNC") { llm.generateResponseAsync(broken) }
                refused("SIZE") { llm.sizeInTokens(broken) }
                refused("TEMPLATE") { PromptTemplates.builder().setUserPrefix(broken).build() }
                LlmInferenceSession.createFromOptions(llm, sessionOptions(topK, temperature, seed)).use { s ->
                    refused("CHUNK") { s.addQueryChunk(broken) }
                    refused("SESSION_SIZE") { s.sizeInTokens(broken) }
                    // valid text goes through
                    out("EMOJI_SIZE", s.sizeInTokens(valid))
                    s.addQueryChunk(valid)
                    out("EMOJI", s.generateResponse().toByteArray(Charsets.UTF_8).joinToString("") { String.format("%02x", it) })
                }
                // the bridge itself refuses it too, for any caller of NativeBridge
                val e = NativeBridge.createEngine(model, 64, 40, IntArray(0))
                val h = NativeBridge.createSession(e, 1, 1f, 0f, 0, null)
                refused("BRIDGE_CHUNK") { NativeBridge.addQueryChunk(h, broken) }
                refused("BRIDGE_TEMPLATES") { NativeBridge.setPromptTemplates(h, arrayOf("", broken, "", "", "", "")) }
                refused("BRIDGE_LORA") { NativeBridge.createSession(e, 1, 1f, 0f, 0, broken) }
                NativeBridge.deleteSession(h)
                NativeBridge.deleteEngine(e)
                out("LIVE", NativeBridge.liveObjects())
            }
            "session" -> LlmInference.createFromOptions(context, options(model, maxTokens, topK, temperature, seed)).use { llm ->
                LlmInferenceSession.createFromOptions(llm, sessionOptions(topK, temperature, seed)).use { s ->
                    out("SIZE", s.sizeInTokens(prompt1))
                    s.addQueryChunk(prompt1)
                    out("SYNC1", s.generateResponse())
                    s.cloneSession().use { c ->
                        c.addQueryChunk(prompt2)
                        val text = StringBuilder()
                        val f = c.generateResponseAsync { partial, _ -> text.append(partial) }
                        // a second generation, or a new chunk, while one runs is refused
                        try {
                            s.generateResponse()
                            out("OVERLAP", "allowed")
                        } catch (e: IllegalStateException) {
                            out("OVERLAP", e.message)
                        }
                        out("ASYNC2", f.get(120, TimeUnit.SECONDS))
                        out("PIECES2", text)
                    }
                    s.addQueryChunk(prompt2)
                    out("SYNC2", s.generateResponse())
                }
                // a session with its own templates: text goes as given
                val raw = LlmInferenceSession.LlmInferenceSessionOptions.builder().setTopK(1)
                    .setPromptTemplates(PromptTemplates.builder().build()).build()
                LlmInferenceSession.createFromOptions(llm, raw).use { s ->
                    s.addQueryChunk(prompt1)
                    out("RAW", s.generateResponse())
                }
            }
            "cycles" -> {
                val n = maxTokens
                val opts = options(model, 64, 1, 0f, 0)
                var first = 0L
                for (i in 0 until n) {
                    LlmInference.createFromOptions(context, opts).use { llm ->
                        LlmInferenceSession.createFromOptions(llm, sessionOptions(1, 0f, 0)).use { s ->
                            s.addQueryChunk("hi")
                            s.cloneSession().close()
                        }
                    }
                    if (i == 50) { System.gc(); first = rssKb() }
                }
                System.gc()
                out("RSS", "$first ${rssKb()}")
                out("LIVE", NativeBridge.liveObjects())
            }
            "closeRunning" -> LlmInference.createFromOptions(context, options(model, maxTokens, 1, 0f, 0)).use { llm ->
                val s = LlmInferenceSession.createFromOptions(llm, sessionOptions(1, 0f, 0))
                s.addQueryChunk(prompt1)
                val started = CountDownLatch(1)
                val f = s.generateResponseAsync { _, _ -> started.countDown() }
                started.await(60, TimeUnit.SECONDS)
                s.close() // stops the generation; the future still completes
                out("CLOSED", f.get(60, TimeUnit.SECONDS).length >= 0)
                try {
                    s.addQueryChunk("x")
                } catch (e: IllegalStateException) {
                    out("AFTER", e.message)
                }
                out("LIVE_ENGINE_ONLY", NativeBridge.liveObjects())
            }
            else -> throw IllegalArgumentException("unknown mode $mode")
        }
    } catch (e: Exception) {
        out("ERROR", "${e.javaClass.name}: ${e.message}")
        exitProcess(1)
    }
}

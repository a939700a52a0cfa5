// MediaPipe's LLM Inference Android sample (its InferenceModel and chat loop),
// as a host program: the same calls on the same classes, with pocketlm's
// HostContext standing in for the app's Context. Build and run:
//
//   kotlinc InferenceModel.kt -cp "$(pocketlm config --classpath)" -include-runtime -d chat.jar
//   java -Djava.library.path="$(pocketlm config --java-library-path)" \
//        -cp "chat.jar:$(pocketlm config --classpath)" InferenceModelKt MODEL [PROFILE] < questions.txt
//
// MODEL: a .task bundle or a GGUF file; PROFILE: a device profile (pixel_8,
// low_end_4gb, ...) whose memory budget and threads hold the run.
import android.content.Context
import com.google.mediapipe.tasks.genai.llminference.LlmInference
import com.google.mediapipe.tasks.genai.llminference.LlmInferenceSession
import com.google.mediapipe.tasks.genai.llminference.ProgressListener
import pocketlm.HostContext
import java.util.concurrent.CountDownLatch

class InferenceModel private constructor(context: Context, modelPath: String) {
    private val llmInference: LlmInference
    private var session: LlmInferenceSession

    init {
        val options = LlmInference.LlmInferenceOptions.builder()
            .setModelPath(modelPath)
            .setMaxTokens(MAX_TOKENS)
            .setPreferredBackend(LlmInference.Backend.CPU)
            .build()
        llmInference = LlmInference.createFromOptions(context, options)
        session = newSession()
    }

    private fun newSession(): LlmInferenceSession = LlmInferenceSession.createFromOptions(
        llmInference,
        LlmInferenceSession.LlmInferenceSessionOptions.builder()
            .setTemperature(0.8f)
            .setTopK(40)
            .setRandomSeed(101)
            .build()
    )

    /** Streams the answer to listener; returns when it is complete. */
    fun generateResponseAsync(prompt: String, listener: ProgressListener<String>): String {
        session.addQueryChunk(prompt)
        return session.generateResponseAsync(listener).get()
    }

    fun resetSession() {
        session.close()
        session = newSession()
    }

    fun close() {
        session.close()
        llmInference.close()
    }

    companion object {
        const val MAX_TOKENS = 1024

        fun getInstance(context: Context, modelPath: String) = InferenceModel(context, modelPath)
    }
}

fun main(args: Array<String>) {
    if (args.isEmpty()) {
        System.err.println("usage: InferenceModelKt MODEL [PROFILE] < questions")
        System.exit(2)
    }
    val context = HostContext(args.getOrNull(1))
    val model = InferenceModel.getInstance(context, args[0])
    try {
        while (true) {
            val prompt = readLine() ?: break
            if (prompt.isBlank()) continue
            if (prompt == "/reset") {
                model.resetSession()
                continue
            }
            println("> $prompt")
            val done = CountDownLatch(1)
            model.generateResponseAsync(prompt, ProgressListener<String> { partial, isDone ->
                print(partial)
                System.out.flush()
                if (isDone) done.countDown()
            })
            done.await()
            println()
            System.out.flush()
        }
        System.err.println("peak memory counted: ${context.peakMemory / (1 shl 20)} MB" +
            (context.profile?.let { " of ${it.appMemoryBudget / (1 shl 20)} MB (${it.displayName})" } ?: ""))
    } finally {
        model.close()
    }
}

// A host program in the shape of LiteRT-LM's Android sample and Kotlin guide, written against
// com.google.ai.edge.litertlm only: an engine, a conversation with a system instruction, earlier
// messages and a tool set, a message answered whole, streamed to a MessageCallback and collected as a
// Flow, a tool's response sent back by hand, a cancelled message, and the refusals. test_litertlm_jvm.py
// compares its text with pocketlm's Python litert_lm. Args: MODEL MAX_NUM_TOKENS QUESTION.
// It prints records "KEY value" ending with \u001e.
import com.google.ai.edge.litertlm.Backend
import com.google.ai.edge.litertlm.Content
import com.google.ai.edge.litertlm.Contents
import com.google.ai.edge.litertlm.ConversationConfig
import com.google.ai.edge.litertlm.Engine
import com.google.ai.edge.litertlm.EngineConfig
import com.google.ai.edge.litertlm.Message
import com.google.ai.edge.litertlm.MessageCallback
import com.google.ai.edge.litertlm.SamplerConfig
import com.google.ai.edge.litertlm.Tool
import com.google.ai.edge.litertlm.ToolParam
import com.google.ai.edge.litertlm.ToolSet
import com.google.ai.edge.litertlm.tool
import java.util.concurrent.CountDownLatch
import kotlinx.coroutines.flow.catch
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.runBlocking

class SampleToolSet : ToolSet {
  @Tool(description = "Get the current weather for a city")
  fun getCurrentWeather(
    @ToolParam(description = "The city name, e.g., San Francisco") city: String,
    @ToolParam(description = "Optional country code, e.g., US") country: String? = null,
    @ToolParam(description = "Temperature unit (celsius or fahrenheit). Default: celsius") unit: String = "celsius"
  ): Map<String, Any> {
    return mapOf("temperature" to 25, "unit" to unit, "condition" to "Sunny")
  }

  @Tool(description = "Get the sum of a list of numbers.")
  fun sum(@ToolParam(description = "The numbers, could be floating point.") numbers: List<Double>): Double {
    return numbers.sum()
  }
}

fun record(key: String, value: Any?) {
  print("$key $value\u001e")
}

fun hex(s: String): String = s.toByteArray(Charsets.UTF_8).joinToString("") { String.format("%02x", it) }

fun error(block: () -> Unit): String = try {
  block()
  "none"
} catch (e: Exception) {
  "${e.javaClass.simpleName}: ${e.message}"
}

fun main(args: Array<String>) {
  val (modelPath, maxTokens, question) = Triple(args[0], args[1].toInt(), args[2])
  val engineConfig = EngineConfig(modelPath = modelPath, backend = Backend.CPU(), maxNumTokens = maxTokens)
  Engine(engineConfig).use { engine ->
    engine.initialize()
    val conversationConfig = ConversationConfig(
      systemInstruction = Contents.of("You are a helpful assistant."),
      initialMessages = listOf(
        Message.user("What is the capital city of the United States?"),
        Message.model("Washington, D.C.")
      ),
      tools = listOf(tool(SampleToolSet())),
      samplerConfig = SamplerConfig(topK = 1, topP = 0.95, temperature = 1.0)
    )

    engine.createConversation(conversationConfig).use { conversation ->
      record("RENDER", hex(conversation.renderMessageToString(Message.user(question))))
      record("SYNC", hex(conversation.sendMessage(question).toString()))
    }

    engine.createConversation(conversationConfig).use { conversation ->
      val pieces = StringBuilder()
      var calls = 0
      val done = CountDownLatch(1)
      var thread = ""
      conversation.sendMessageAsync(question, object : MessageCallback {
        override fun onMessage(message: Message) {
          pieces.append(message.toString())
          calls++
          thread = Thread.currentThread().name
        }

        override fun onDone() {
          done.countDown()
        }

        override fun onError(throwable: Throwable) {
          record("ASYNC_ERROR", throwable)
          done.countDown()
        }
      })
      done.await()
      record("ASYNC", hex(pieces.toString()))
      record("CALLS", calls)
      record("THREAD", thread)
    }

    engine.createConversation(conversationConfig).use { conversation ->
      val flowed = StringBuilder()
      runBlocking {
        conversation.sendMessageAsync(question)
          .catch { record("FLOW_ERROR", it) }
          .collect { flowed.append(it.toString()) }
      }
      record("FLOW", hex(flowed.toString()))
    }

    // a tool's response sent by hand (automaticToolCalling = false), as the guide's manual tool calling does
    engine.createConversation(conversationConfig.copy(automaticToolCalling = false)).use { conversation ->
      val toolResponse = Message.tool(Contents.of(Content.ToolResponse("getCurrentWeather",
        SampleToolSet().getCurrentWeather("London"))))
      record("TOOL", hex(conversation.sendMessage(toolResponse).toString()))
    }

    engine.createConversation(conversationConfig).use { conversation ->
      val done = CountDownLatch(1)
      var n = 0
      conversation.sendMessageAsync(question, object : MessageCallback {
        override fun onMessage(message: Message) {
          if (n++ == 2) conversation.cancelProcess()
        }

        override fun onDone() {
          done.countDown()
        }

        override fun onError(throwable: Throwable) {
          done.countDown()
        }
      })
      done.await()
      record("CANCELLED_AFTER", n)
      record("BUSY", error {
        conversation.sendMessageAsync(question, object : MessageCallback {
          override fun onMessage(message: Message) {}
          override fun onDone() {}
          override fun onError(throwable: Throwable) {}
        })
        conversation.sendMessage(question)
      })
    }

    val closed = engine.createConversation(conversationConfig)
    closed.close()
    record("CLOSED", error { closed.sendMessage(question) })
    record("IMAGE", error { engine.createConversation().sendMessage(Contents.of(Content.ImageFile("/tmp/cat.png"))) })
    record("MAX_OUTPUT", error { engine.createConversation(ConversationConfig(maxOutputToken = 8)) })
    record("BAD_TOOL", error { engine.createConversation(ConversationConfig(tools = listOf(tool(object : ToolSet {
      @Tool(description = "takes a map")
      fun bad(@ToolParam(description = "a map") m: Map<String, String>): String = m.toString()
    })))) })
  }
  record("GPU", error { Engine(EngineConfig(modelPath = modelPath, backend = Backend.GPU())).initialize() })
  record("SAMPLER", error { SamplerConfig(topK = 0, topP = 0.95, temperature = 1.0) })
}

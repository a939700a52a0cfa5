package com.google.ai.edge.litertlm

import com.google.mediapipe.framework.MediaPipeException
import java.util.concurrent.CountDownLatch
import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import pocketlm.NativeBridge

/**
 * LiteRT-LM's Conversation on the host JVM: messages in, the model's message out. The conversation is
 * rendered with the model's turn templates as libpocketlm's C text path gives them (the bundle's, or
 * its chat template's family), as pocketlm's Python litert_lm renders a model without a Jinja
 * template; each turn prefills the text the previous render did not hold. Tool calls are read in the
 * family's format and, with automatic calling, run and answered, up to [RECURRING_TOOL_CALL_LIMIT]
 * rounds. One message at a time; cancelProcess stops the one in flight.
 */
class Conversation internal constructor(private val engine: Engine, val config: ConversationConfig) : AutoCloseable {
  private class Turn(val role: String, val parts: List<Any?>) // a part: a String, or a ToolResponse

  private val alive = AtomicBoolean(true)
  private val sessionLock = Object() // held while a turn uses the native session, and by close() to free it
  private val busy = AtomicBoolean(false)
  private val tools = LinkedHashMap<String, RunnableTool>()
  private val history = ArrayList<Turn>()
  private var rendered = ""
  private val family = ToolCalls.family(engine.family)
  private val session: Long
  private val host = engine.host()
  private val reserved: Long // bytes counted against the device profile's budget while the conversation is open

  val automaticToolCalling: Boolean get() = config.automaticToolCalling

  /** Whether the conversation is alive and ready to be used. */
  val isAlive: Boolean get() = alive.get()

  init {
    val c = config
    refuseUnless("maxOutputToken", c.maxOutputToken, "the JVM bridge's generate loop ends at maxNumTokens only")
    refuseUnless("chatTemplate", c.chatTemplate, "the JVM renders turns from the model's turn templates, not Jinja")
    refuseUnless("thinkingConfig", c.thinkingConfig, "no Jinja template takes enable_thinking on the JVM")
    if (c.extraContext.isNotEmpty()) refuseUnless("extraContext", c.extraContext, "no Jinja template renders it")
    if (c.enableResponseFormat) refuseUnless("enableResponseFormat", true, "constrained decoding runs in Python only")
    if (c.enableSpeculativeDecoding == true) refuseUnless("enableSpeculativeDecoding", true, "no drafter")
    if (!c.channels.isNullOrEmpty()) refuseUnless("channels", c.channels, "the JVM reads no channels")
    refuseUnless("loraConfig.audioLoraPath", c.loraConfig?.audioLoraPath, "pocketlm runs text models only")
    for (provider in c.tools) {
      for (t in provider.tools()) {
        require(!tools.containsKey(t.name)) { "two tools are named ${t.name}" }
        tools[t.name] = t
      }
    }
    c.systemInstruction?.let { history.add(Turn("system", parts(it))) }
    for (m in c.initialMessages) history.add(turnOf(m))
    val s = c.samplerConfig
    val topK = if (s == null || s.topP == 0.0) 1 else s.topK
    val h = engine.handle()
    val mem = engine.memory()
    reserved = mem[1] + mem[2]
    host?.reserve("a conversation's KV cache and buffers", reserved) // refused over the phone's budget
    session = try {
      NativeBridge.createSession(h, topK, if (s == null || s.topP == 0.0) 1.0f else s.topP.toFloat(),
        s?.temperature?.toFloat() ?: 1.0f, s?.seed ?: 0, c.loraConfig?.loraPath)
    } catch (e: MediaPipeException) {
      host?.release(reserved)
      throw LiteRtLmJniException("Failed to create conversation: ${e.message}", e)
    }
    // the conversation's text is rendered here, whole turns: the session adds nothing around it
    NativeBridge.setPromptTemplates(session, arrayOf("", "", "", "", "", ""))
  }

  private fun refuseUnless(what: String, value: Any?, why: String) = Engine.refuse(what, value, why)

  private fun checkIsAlive() {
    check(alive.get()) { "Conversation is not alive." }
  }

  private fun parts(contents: Contents): List<Any?> = contents.contents.map<Content, Any?> {
    when (it) {
      is Content.Text -> it.text
      is Content.ToolResponse -> it
      else -> throw IllegalArgumentException("a ${it.javaClass.simpleName} part: pocketlm runs text models only")
    }
  }

  private fun turnOf(m: Message): Turn {
    val role = when (m.role) {
      Role.SYSTEM -> "system"
      Role.USER -> "user"
      Role.MODEL -> "assistant"
      Role.TOOL -> "tool"
    }
    val p = ArrayList<Any?>(parts(m.contents))
    return Turn(role, p)
  }

  // -- rendering ------------------------------------------------------------------------------------

  private fun render(turns: List<Turn>, addGenerationPrompt: Boolean): String {
    val t = engine.templates ?: arrayOf("", "", "", "", "", "", "", "")
    val sb = StringBuilder()
    if (turns.isNotEmpty() && turns[0].role != "system") sb.append(t[6])
    for (m in turns) {
      val text = m.parts.joinToString("") { if (it is Content.ToolResponse) Json.write(it.response) else it.toString() }
      when (m.role) {
        "system" -> sb.append(t[4]).append(text).append(t[5])
        "assistant" -> sb.append(t[2]).append(text).append(t[3])
        else -> sb.append(t[0]).append(text).append(t[1])
      }
    }
    if (addGenerationPrompt) sb.append(t[2])
    return sb.toString()
  }

  private fun turnText(new: List<Turn>): String {
    val full = render(history + new, true)
    if (full.startsWith(rendered)) return full.substring(rendered.length)
    var n = 0
    while (n < minOf(full.length, rendered.length) && full[n] == rendered[n]) n++
    return full.substring(n)
  }

  /** The text a message adds to the conversation's prompt (its turn and the generation prompt). */
  fun renderMessageToString(message: Message): String {
    checkIsAlive()
    return turnText(listOf(turnOf(message)))
  }

  // -- generating -----------------------------------------------------------------------------------

  private fun generate(onPiece: (String) -> Unit): String {
    val done = CountDownLatch(1)
    val text = StringBuilder()
    var failure: Throwable? = null
    NativeBridge.predictAsync(session, object : NativeBridge.Pieces {
      override fun onPiece(piece: String, last: Boolean) {
        try {
          if (piece.isNotEmpty()) {
            text.append(piece)
            if (failure == null) onPiece(piece)
          }
        } catch (e: Throwable) {
          failure = e
          NativeBridge.cancel(session)
        } finally {
          if (last) done.countDown()
        }
      }
    })
    done.await()
    failure?.let { throw it }
    return text.toString()
  }

  private fun oneTurn(new: List<Turn>, onPiece: (String) -> Unit, stream: Boolean): Message = synchronized(sessionLock) {
    checkIsAlive() // close() may have come between two rounds, or before a worker's first
    val text = turnText(new)
    val ts = if (stream && tools.isNotEmpty()) ToolCallStream(family, onPiece) else null
    val answer = try {
      NativeBridge.addQueryChunk(session, text)
      generate(ts?.let { s -> { p: String -> s.feed(p) } } ?: onPiece)
    } catch (e: MediaPipeException) {
      throw LiteRtLmJniException("Failed to send message: ${e.message}", e)
    }
    val (rest, calls) = if (tools.isNotEmpty()) ToolCalls.parse(answer, family) else Pair(answer, listOf<ToolCall>())
    ts?.finish(answer, calls)
    history.addAll(new)
    history.add(Turn("assistant", listOf(answer)))
    rendered = render(history, false)
    Message(Role.MODEL, if (rest.isNotEmpty() || calls.isEmpty()) Contents.of(rest) else Contents.empty(), calls)
  }

  private fun toolResponses(response: Message): List<Turn> =
    ToolSetTools.respond(tools, response.toolCalls).map { Turn("tool", listOf(it)) }

  /** Takes the conversation for one message (in the caller's thread), or throws as LiteRT-LM does. */
  private fun acquire(penalties: Array<Any?>) {
    checkIsAlive()
    checkPenalties(penalties)
    if (!busy.compareAndSet(false, true)) throw IllegalStateException("Previous invocation still processing.")
  }

  /** One message, its tool rounds included, on a conversation acquire() took; releases it. */
  private fun run(message: Message, onPiece: (String) -> Unit, stream: Boolean): Message {
    try {
      var current = listOf(turnOf(message))
      for (i in 0 until RECURRING_TOOL_CALL_LIMIT) {
        val response = oneTurn(current, onPiece, stream)
        if (!config.automaticToolCalling || response.toolCalls.isEmpty()) return response
        current = toolResponses(response)
      }
      throw IllegalStateException("Exceeded recurring tool call limit of $RECURRING_TOOL_CALL_LIMIT")
    } finally {
      busy.set(false)
    }
  }

  private fun checkPenalties(p: Array<Any?>) {
    val r = p[0] as RepetitionPenaltyConfig?
    if (r != null && listOf(r.repetitionPenalty, r.presencePenalty, r.frequencyPenalty).any { it != null && it != 0f && it != 1f }) {
      refuseUnless("repetitionPenaltyConfig", r, "pocketlm's samplers apply no repetition penalties")
    }
    val n = p[1] as NoRepeatNgramConfig?
    if (n != null && (n.noRepeatNgramSize ?: 0) > 0) refuseUnless("noRepeatNgramConfig", n, "pocketlm's samplers ban no n-grams")
    val s = p[2] as SuppressTokensConfig?
    if (s != null && s.suppressTokens.isNotEmpty()) refuseUnless("suppressTokensConfig", s, "pocketlm's samplers suppress no tokens")
    refuseUnless("maxOutputToken", p[3], "the JVM bridge's generate loop ends at maxNumTokens only")
    refuseUnless("thinkingConfig", p[4], "no Jinja template takes enable_thinking on the JVM")
    if ((p[5] as Map<*, *>).isNotEmpty()) refuseUnless("extraContext", p[5], "no Jinja template renders it")
  }

  @JvmOverloads
  fun sendMessage(
    message: Message,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Message {
    turnOf(message)
    acquire(arrayOf(repetitionPenaltyConfig, noRepeatNgramConfig, suppressTokensConfig, maxOutputToken, thinkingConfig,
      extraContext))
    return run(message, {}, false)
  }

  @JvmOverloads
  fun sendMessage(
    contents: Contents,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Message = sendMessage(Message.user(contents), extraContext, repetitionPenaltyConfig, noRepeatNgramConfig,
    suppressTokensConfig, maxOutputToken, thinkingConfig)

  @JvmOverloads
  fun sendMessage(
    text: String,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Message = sendMessage(Contents.of(text), extraContext, repetitionPenaltyConfig, noRepeatNgramConfig,
    suppressTokensConfig, maxOutputToken, thinkingConfig)

  /**
   * Streams the response to callback on a thread of its own: the text of every round as it is decoded
   * (a tool call held back and run), then onDone; onError instead when it fails.
   */
  @JvmOverloads
  fun sendMessageAsync(
    message: Message,
    callback: MessageCallback,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ) {
    turnOf(message) // a part pocketlm cannot run is refused here, in the caller's thread
    acquire(arrayOf(repetitionPenaltyConfig, noRepeatNgramConfig, suppressTokensConfig, maxOutputToken, thinkingConfig,
      extraContext))
    val worker = Thread({
      try {
        val last = run(message, { piece -> callback.onMessage(Message.model(piece)) }, true)
        if (last.toolCalls.isNotEmpty()) callback.onMessage(Message.model(Contents.empty(), last.toolCalls))
        callback.onDone()
      } catch (e: Throwable) {
        callback.onError(e)
      }
    }, "pocketlm-litertlm")
    worker.isDaemon = true
    worker.start()
  }

  @JvmOverloads
  fun sendMessageAsync(
    contents: Contents,
    callback: MessageCallback,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ) = sendMessageAsync(Message.user(contents), callback, extraContext, repetitionPenaltyConfig, noRepeatNgramConfig,
    suppressTokensConfig, maxOutputToken, thinkingConfig)

  @JvmOverloads
  fun sendMessageAsync(
    text: String,
    callback: MessageCallback,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ) = sendMessageAsync(Contents.of(text), callback, extraContext, repetitionPenaltyConfig, noRepeatNgramConfig,
    suppressTokensConfig, maxOutputToken, thinkingConfig)

  /** The response as a Flow of message pieces; an error of the generation is thrown from collect. */
  @JvmOverloads
  fun sendMessageAsync(
    message: Message,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Flow<Message> = object : Flow<Message> {
    override suspend fun collect(collector: FlowCollector<Message>) {
      val channel = Channel<Message>(Channel.UNLIMITED)
      sendMessageAsync(message, object : MessageCallback {
        override fun onMessage(message: Message) {
          channel.offer(message)
        }

        override fun onDone() {
          channel.close()
        }

        override fun onError(throwable: Throwable) {
          channel.close(throwable)
        }
      }, extraContext, repetitionPenaltyConfig, noRepeatNgramConfig, suppressTokensConfig, maxOutputToken,
        thinkingConfig)
      for (m in channel) collector.emit(m)
    }
  }

  @JvmOverloads
  fun sendMessageAsync(
    contents: Contents,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Flow<Message> = sendMessageAsync(Message.user(contents), extraContext, repetitionPenaltyConfig,
    noRepeatNgramConfig, suppressTokensConfig, maxOutputToken, thinkingConfig)

  @JvmOverloads
  fun sendMessageAsync(
    text: String,
    extraContext: Map<String, Any> = emptyMap(),
    repetitionPenaltyConfig: RepetitionPenaltyConfig? = null,
    noRepeatNgramConfig: NoRepeatNgramConfig? = null,
    suppressTokensConfig: SuppressTokensConfig? = null,
    maxOutputToken: Int? = null,
    thinkingConfig: ThinkingConfig? = null
  ): Flow<Message> = sendMessageAsync(Contents.of(text), extraContext, repetitionPenaltyConfig, noRepeatNgramConfig,
    suppressTokensConfig, maxOutputToken, thinkingConfig)

  /** Stops the message in flight before its next token; what was decoded so far is its response. */
  fun cancelProcess() {
    checkIsAlive()
    NativeBridge.cancel(session)
  }

  override fun close() {
    if (!alive.compareAndSet(true, false)) return
    NativeBridge.cancel(session) // a generation in flight ends at its next token
    synchronized(sessionLock) {
      NativeBridge.deleteSession(session) // no turn holds the session now; a later round finds it closed
    }
    host?.release(reserved)
  }

  companion object {
    /** Rounds of tool calls one message runs at most. */
    const val RECURRING_TOOL_CALL_LIMIT = 25
  }
}

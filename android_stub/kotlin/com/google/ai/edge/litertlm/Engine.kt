package com.google.ai.edge.litertlm

import com.google.mediapipe.framework.MediaPipeException
import java.io.File
import pocketlm.HostContext
import pocketlm.NativeBridge

/**
 * LiteRT-LM's Engine on the host JVM, over libpocketlm through the JNI bridge (pocketlm.NativeBridge):
 * one model, loaded by [initialize]; each [Conversation] holds its own session and KV cache.
 * pocketlm's own: the system property `pocketlm.device` names a device profile ("pixel_8", ...) whose
 * memory budget and threads hold the run, as pocketlm.HostContext holds MediaPipe's classes.
 */
class Engine(val engineConfig: EngineConfig) : AutoCloseable {
  private var handle = 0L
  private var memory = LongArray(3)
  private var host: HostContext? = null
  private var savedThreads = -1
  internal var templates: Array<String>? = null
  internal var family: String? = null

  fun isInitialized(): Boolean = synchronized(this) { handle != 0L }

  /** Opens the model; a bad file, setting or a profile too small throws, naming it. */
  fun initialize() {
    synchronized(this) {
      check(handle == 0L) { "Engine is already initialized." }
      val c = engineConfig
      val backend = c.backend
      if (backend !is Backend.CPU) {
        throw LiteRtLmJniException("Failed to create engine for ${c.modelPath}: the ${backend.name} backend is not " +
          "simulated; pocketlm runs the model on the CPU (Backend.CPU())")
      }
      refuse("visionBackend", c.visionBackend, "pocketlm runs text models only")
      refuse("audioBackend", c.audioBackend, "pocketlm runs text models only")
      refuse("maxNumImages", c.maxNumImages, "pocketlm runs text models only")
      if (c.activationDataType != null && c.activationDataType != ActivationDataType.FLOAT32) {
        refuse("activationDataType", c.activationDataType, "pocketlm's engines compute in float32")
      }
      @Suppress("DEPRECATION")
      val threads = backend.threadCount ?: backend.numOfThreads
      require(threads == null || threads >= 0) { "Backend.CPU(threadCount=$threads): a thread count is >= 0" }
      val device = System.getProperty("pocketlm.device")
      val ctx = if (device.isNullOrEmpty()) null else HostContext(device)
      val profile = ctx?.profile
      if (profile != null && threads != null && threads > profile.threads) {
        throw IllegalArgumentException("Backend.CPU(threadCount=$threads) is more threads than ${profile.name} " +
          "gives an app (${profile.threads})")
      }
      val maxTokens = c.maxNumTokens ?: DEFAULT_MAX_NUM_TOKENS
      val h = try {
        NativeBridge.createEngine(c.modelPath, maxTokens, 0, IntArray(0))
      } catch (e: MediaPipeException) {
        throw LiteRtLmJniException("Failed to create engine: ${e.message}", e)
      }
      val mem = NativeBridge.engineMemory(h)
      try {
        ctx?.admitEngine(File(c.modelPath).name, maxTokens, mem)
      } catch (e: RuntimeException) {
        NativeBridge.deleteEngine(h)
        throw e
      }
      if (ctx == null && threads != null && threads > 0) savedThreads = NativeBridge.setMaxThreads(threads)
      val t = NativeBridge.turnTemplates(h)
      templates = t
      family = t?.get(7)
      memory = mem
      host = ctx
      handle = h
    }
  }

  /** A new conversation with its own KV cache. */
  @JvmOverloads
  fun createConversation(conversationConfig: ConversationConfig = ConversationConfig()): Conversation =
    Conversation(this, conversationConfig)

  /** The device context holding the run (null: no limits), and {weights, one session's KV cache, its buffers}. */
  internal fun host(): HostContext? = synchronized(this) { host }

  internal fun memory(): LongArray = synchronized(this) { memory.clone() }

  internal fun handle(): Long = synchronized(this) {
    check(handle != 0L) { "Engine is not initialized." }
    handle
  }

  override fun close() {
    synchronized(this) {
      if (handle == 0L) return
      NativeBridge.deleteEngine(handle) // open conversations keep the model until they close
      handle = 0L
      host?.releaseEngine(memory)
      host = null
      if (savedThreads >= 0) {
        NativeBridge.setMaxThreads(savedThreads)
        savedThreads = -1
      }
    }
  }

  companion object {
    /** The KV cache of an EngineConfig without maxNumTokens (LiteRT-LM's default for a converted model). */
    const val DEFAULT_MAX_NUM_TOKENS = 4096

    internal fun refuse(what: String, value: Any?, why: String) {
      if (value != null) throw IllegalArgumentException("$what=$value is not supported: $why")
    }
  }
}

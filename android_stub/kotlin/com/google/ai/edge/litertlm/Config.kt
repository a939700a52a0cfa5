package com.google.ai.edge.litertlm

/*
 * LiteRT-LM's configuration classes (com.google.ai.edge.litertlm, Config.kt) with their names,
 * parameter order, defaults and checks. pocketlm runs every backend it simulates on the CPU: the
 * others are refused by name when the engine is initialized.
 */

/** A channel of the model's output apart from the response (a thinking channel). */
data class Channel(val channelName: String, val start: String, val end: String)

/** Repetition penalties; pocketlm's sampler applies none, so one that changes the logits is refused. */
data class RepetitionPenaltyConfig @JvmOverloads constructor(
  val repetitionPenalty: Float? = null,
  val presencePenalty: Float? = null,
  val frequencyPenalty: Float? = null,
  val windowSize: Int? = null
) {
  init {
    require(repetitionPenalty == null || repetitionPenalty >= 1.0f) {
      "repetitionPenalty should be >= 1.0, but got $repetitionPenalty."
    }
    require(windowSize == null || windowSize >= 0) { "windowSize should be >= 0, but got $windowSize." }
  }
}

data class NoRepeatNgramConfig @JvmOverloads constructor(val noRepeatNgramSize: Int? = null, val windowSize: Int? = null) {
  init {
    require(noRepeatNgramSize == null || noRepeatNgramSize >= 0) {
      "noRepeatNgramSize should be >= 0, but got $noRepeatNgramSize."
    }
    require(windowSize == null || windowSize >= 0) { "windowSize should be >= 0, but got $windowSize." }
  }
}

data class SuppressTokensConfig(val suppressTokens: Collection<Int>)

data class ThinkingConfig @JvmOverloads constructor(val enableThinking: Boolean = true, val thinkingTokenBudget: Int = -1)

/** The backend of the engine, as on the phone. pocketlm runs [CPU] only. */
sealed class Backend(val name: String) {
  /** threadCount: the threads of the CPU backend (null or 0: the engine's default). */
  data class CPU(
    val threadCount: Int? = null,
    @Deprecated("Use threadCount instead", ReplaceWith("threadCount")) val numOfThreads: Int? = null
  ) : Backend("CPU")

  class GPU : Backend("GPU")

  data class NPU(val nativeLibraryDir: String = "") : Backend("NPU")

  class GOOGLE_TENSOR : Backend("GOOGLE_TENSOR_ARTISAN")
}

enum class ActivationDataType(val value: Int) {
  FLOAT32(0),
  FLOAT16(1),
  INT16(2),
  INT8(3)
}

/** The engine's configuration; maxNumTokens is the KV cache (input + output tokens). */
data class EngineConfig @JvmOverloads constructor(
  val modelPath: String,
  val backend: Backend = Backend.CPU(),
  val visionBackend: Backend? = null,
  val audioBackend: Backend? = null,
  val maxNumTokens: Int? = null,
  val maxNumImages: Int? = null,
  val cacheDir: String? = null,
  val activationDataType: ActivationDataType? = null
) {
  init {
    require(maxNumTokens == null || maxNumTokens > 0) {
      "maxNumToken must be positive or null (use the default from model or engine)."
    }
    require(maxNumImages == null || maxNumImages > 0) {
      "maxNumImages must be positive or null (use the default from model or engine)."
    }
  }
}

/** A conversation's configuration; systemInstruction goes before initialMessages. */
data class ConversationConfig @JvmOverloads constructor(
  val systemInstruction: Contents? = null,
  val initialMessages: List<Message> = listOf(),
  val tools: List<ToolProvider> = listOf(),
  val samplerConfig: SamplerConfig? = null,
  val automaticToolCalling: Boolean = true,
  val channels: List<Channel>? = null,
  val extraContext: Map<String, Any> = emptyMap(),
  val loraConfig: LoraConfig? = null,
  val prefillPrefaceOnInit: Boolean = false,
  val maxOutputToken: Int? = null,
  val thinkingConfig: ThinkingConfig? = null,
  val enableResponseFormat: Boolean = false,
  val enableSpeculativeDecoding: Boolean? = null,
  val chatTemplate: String? = null
) {
  init {
    require(maxOutputToken == null || maxOutputToken > 0) {
      "maxOutputToken must be positive or null (use the default from model or engine)."
    }
  }
}

/** Sampling: topK, topP (nucleus), temperature and the seed of the random stream. */
data class SamplerConfig(val topK: Int, val topP: Double, val temperature: Double, val seed: Int = 0) {
  init {
    require(topK > 0) { "topK should be positive, but got $topK." }
    require(topP >= 0 && topP <= 1) { "topP should between 0 and 1 inclusively, but got $topP." }
    require(temperature >= 0) { "temperature should be non-negative, but got $temperature." }
  }
}

data class LoraConfig(val loraPath: String? = null, val audioLoraPath: String? = null)

package com.google.mediapipe.tasks.genai.llminference;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.SettableFuture;
import java.util.Optional;
import pocketlm.HostContext;
import pocketlm.NativeBridge;

/**
 * A conversation on an {@link LlmInference}, as MediaPipe's Android class: its
 * own KV cache and sampling settings over the shared model. Query chunks add
 * to the current turn; a response ends it; the next chunk opens a new turn
 * on the same context. The first piece of every response loses its leading
 * whitespace, as on Android.
 */
public final class LlmInferenceSession implements AutoCloseable {
  private static final String BUSY = "Previous invocation still processing. Wait for done=true.";

  private final LlmInference llm;
  private final long reserved; // bytes counted against the HostContext's budget
  private long session;
  private volatile boolean generatingHere;

  /**
   * A new session on llmInference, with its options' LoRA adapter (a GGUF LoRA adapter: what pocketlm's converter
   * writes, or llama.cpp's), else the LlmInference's loraPath adapter, else none; a topK above its maxTopK, or an
   * adapter that does not fit the model, is refused. (On Android a session whose options set no loraPath runs the
   * base model even when the LlmInference has one; pocketlm keeps the LlmInference's adapter instead of dropping it.)
   */
  public static LlmInferenceSession createFromOptions(LlmInference llmInference, LlmInferenceSessionOptions options) {
    if (llmInference == null || options == null) throw new NullPointerException("llmInference and options are required");
    if (llmInference.generating.get()) throw new IllegalStateException(BUSY);
    long[] mem = llmInference.memory();
    HostContext host = llmInference.host();
    long need = mem[1] + mem[2];
    if (host != null) host.reserve("a session's KV cache and buffers", need);
    // "" names no adapter, as None and "" do in pocketlm's Python API
    String lora = options.loraPath().filter(p -> !p.isEmpty()).orElse(llmInference.options().loraPath().orElse(null));
    long s;
    try {
      s = NativeBridge.createSession(llmInference.engineHandle(), options.topK(), options.topP(),
          options.temperature(), options.randomSeed(), lora);
      if (options.promptTemplates().isPresent()) {
        PromptTemplates t = options.promptTemplates().get();
        try {
          NativeBridge.setPromptTemplates(s, new String[] {t.userPrefix(), t.userSuffix(), t.modelPrefix(),
              t.modelSuffix(), t.systemPrefix(), t.systemSuffix()});
        } catch (RuntimeException e) {
          NativeBridge.deleteSession(s);
          throw e;
        }
      }
    } catch (RuntimeException e) {
      if (host != null) host.release(need);
      throw e;
    }
    return new LlmInferenceSession(llmInference, s, host != null ? need : 0);
  }

  private LlmInferenceSession(LlmInference llm, long session, long reserved) {
    this.llm = llm;
    this.session = session;
    this.reserved = reserved;
  }

  private synchronized long handle() {
    if (session == 0) throw new IllegalStateException("LlmInferenceSession is closed");
    return session;
  }

  /** Adds text to the current turn (the turn's template opens it); a lone surrogate throws IllegalArgumentException. */
  public void addQueryChunk(String inputText) {
    if (llm.generating.get()) throw new IllegalStateException(BUSY);
    NativeBridge.addQueryChunk(handle(), ValidText.check("inputText", inputText));
  }

  /** The response to the chunks added since the last one; blocks until done. */
  public String generateResponse() {
    long s = handle();
    acquire();
    try {
      return stripLeading(NativeBridge.predictSync(s));
    } finally {
      release();
    }
  }

  /** Generates on a JVM thread, streaming to the LlmInference's result listener. */
  public ListenableFuture<String> generateResponseAsync() {
    return generateResponseAsync(llm.options().resultListener().orElse(null));
  }

  /**
   * Generates on a JVM thread: progressListener gets each new piece in order and a last
   * call with done = true; the future gives the whole text. A listener that throws
   * stops the generation; its exception reaches the error listener and the future.
   */
  public ListenableFuture<String> generateResponseAsync(ProgressListener<String> progressListener) {
    long s = handle();
    SettableFuture<String> future = SettableFuture.create();
    ErrorListener errors = llm.options().errorListener().orElse(null);
    acquire();
    StringBuilder whole = new StringBuilder();
    NativeBridge.Pieces pieces = new NativeBridge.Pieces() {
      private boolean started;
      private RuntimeException failure;

      @Override
      public void onPiece(String text, boolean done) {
        if (!done) {
          if (!started) {
            text = stripLeading(text);
            started = !text.isEmpty();
          }
          if (text.isEmpty() || failure != null) return;
          whole.append(text);
          if (progressListener != null) {
            try {
              progressListener.run(text, false);
            } catch (RuntimeException e) {
              failure = e;
              NativeBridge.cancel(s);
            }
          }
          return;
        }
        release(); // before done = true, so the listener may start the next generation
        if (failure == null && progressListener != null) {
          try {
            progressListener.run("", true);
          } catch (RuntimeException e) {
            failure = e;
          }
        }
        if (failure != null) {
          if (errors != null) errors.onError(failure);
          future.setException(failure);
        } else {
          future.set(whole.toString());
        }
      }
    };
    try {
      NativeBridge.predictAsync(s, pieces);
    } catch (RuntimeException e) {
      release();
      throw e;
    }
    return future;
  }

  /** Tokens text encodes to (no BOS, no template). */
  public int sizeInTokens(String text) {
    return NativeBridge.sizeInTokens(handle(), ValidText.check("text", text));
  }

  /** A new session holding this one's conversation so far, to continue it another way. */
  public LlmInferenceSession cloneSession() {
    if (llm.generating.get()) throw new IllegalStateException(BUSY);
    HostContext host = llm.host();
    if (host != null) host.reserve("a cloned session's KV cache and buffers", reserved);
    try {
      return new LlmInferenceSession(llm, NativeBridge.cloneSession(handle()), reserved);
    } catch (RuntimeException e) {
      if (host != null) host.release(reserved);
      throw e;
    }
  }

  /** Stops a generation in flight (its listener still gets done = true), then frees the session. */
  @Override
  public void close() {
    long s;
    synchronized (this) {
      s = session;
      session = 0;
    }
    if (s == 0) return;
    if (generatingHere) NativeBridge.cancel(s);
    NativeBridge.deleteSession(s); // waits for the generation thread
    HostContext host = llm.host();
    if (host != null) host.release(reserved);
  }

  private void acquire() {
    if (!llm.generating.compareAndSet(false, true)) throw new IllegalStateException(BUSY);
    generatingHere = true;
  }

  private void release() {
    generatingHere = false;
    llm.generating.set(false);
  }

  /** Android's stripLeadingWhitespace of a response's first output. */
  static String stripLeading(String text) {
    int i = 0;
    while (i < text.length()) {
      int cp = text.codePointAt(i);
      if (!Character.isWhitespace(cp)) break;
      i += Character.charCount(cp);
    }
    return text.substring(i);
  }

  /** Options of an {@link LlmInferenceSession}: topK 40, topP 1, temperature 0.8, randomSeed 0. */
  public static final class LlmInferenceSessionOptions {
    private final int topK, randomSeed;
    private final float topP, temperature;
    private final Optional<String> loraPath;
    private final Optional<PromptTemplates> promptTemplates;

    private LlmInferenceSessionOptions(Builder b) {
      topK = b.topK;
      topP = b.topP;
      temperature = b.temperature;
      randomSeed = b.randomSeed;
      loraPath = Optional.ofNullable(b.loraPath);
      promptTemplates = Optional.ofNullable(b.promptTemplates);
    }

    /** Tokens sampled from at each step; 1 is greedy. */
    public int topK() { return topK; }
    public float topP() { return topP; }
    /** Randomness; 0 is greedy. */
    public float temperature() { return temperature; }
    public int randomSeed() { return randomSeed; }
    /** This session's LoRA adapter; empty: the LlmInference's loraPath adapter, if it has one. */
    public Optional<String> loraPath() { return loraPath; }
    /** The session's own turn templates instead of the model's. */
    public Optional<PromptTemplates> promptTemplates() { return promptTemplates; }

    public static Builder builder() {
      return new Builder();
    }

    /** Builder for {@link LlmInferenceSessionOptions}. */
    public static final class Builder {
      private int topK = 40, randomSeed = 0;
      private float topP = 1.0f, temperature = 0.8f;
      private String loraPath;
      private PromptTemplates promptTemplates;

      private Builder() {}

      public Builder setTopK(int topK) { this.topK = topK; return this; }
      public Builder setTopP(float topP) { this.topP = topP; return this; }
      public Builder setTemperature(float temperature) { this.temperature = temperature; return this; }
      public Builder setRandomSeed(int randomSeed) { this.randomSeed = randomSeed; return this; }
      public Builder setLoraPath(String loraPath) { this.loraPath = loraPath; return this; }
      public Builder setPromptTemplates(PromptTemplates templates) { this.promptTemplates = templates; return this; }

      /** Checks the options; a bad value throws IllegalArgumentException naming it. */
      public LlmInferenceSessionOptions build() {
        if (topK < 1) throw new IllegalArgumentException("topK must be >= 1, got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("topP must be in (0, 1], got " + topP);
        if (!(temperature >= 0)) throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        return new LlmInferenceSessionOptions(this);
      }
    }
  }
}

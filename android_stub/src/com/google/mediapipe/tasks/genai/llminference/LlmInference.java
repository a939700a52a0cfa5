package com.google.mediapipe.tasks.genai.llminference;

import android.content.Context;
import com.google.common.util.concurrent.ListenableFuture;
import java.io.File;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import pocketlm.HostContext;
import pocketlm.NativeBridge;

/**
 * The LLM Inference task, as MediaPipe's Android class of the same name, run on
 * the host JVM by libpocketlm on the CPU. The model is a GGUF file or a .task
 * bundle; {@code generateResponse} answers in a new session each call (no
 * memory of earlier calls); {@link LlmInferenceSession} holds a conversation.
 * One generation at a time per LlmInference: a second one while one runs
 * throws IllegalStateException, as on Android. Pass a {@link HostContext}
 * with a device profile to hold the run to a phone's memory and threads.
 */
public class LlmInference implements AutoCloseable {
  /** The accelerator a phone would use; pocketlm runs every backend on the CPU. */
  public enum Backend {
    DEFAULT,
    CPU,
    GPU
  }

  private final LlmInferenceOptions options;
  private final HostContext host; // null: no device limits
  private final long[] memory;
  private final String modelName;
  private long engine;
  private LlmInferenceSession implicitSession;
  final AtomicBoolean generating = new AtomicBoolean();

  /** Opens options.modelPath(); a missing or unreadable model throws with the file named. */
  public static LlmInference createFromOptions(Context context, LlmInferenceOptions options) {
    if (options == null) throw new NullPointerException("options is null");
    if (options.preferredBackend().orElse(Backend.DEFAULT) == Backend.GPU) {
      java.util.logging.Logger.getLogger("pocketlm").warning("preferredBackend GPU is recorded only: pocketlm runs "
          + "the model on the CPU (the phone's CPU path), so speed and memory figures are the CPU backend's");
    }
    return new LlmInference(context, options);
  }

  private LlmInference(Context context, LlmInferenceOptions options) {
    this.options = options;
    this.host = context instanceof HostContext ? (HostContext) context : null;
    if (options.maxNumImages() > 0) {
      throw new IllegalArgumentException("maxNumImages " + options.maxNumImages()
          + ": pocketlm runs text models only");
    }
    int[] ranks = new int[options.supportedLoraRanks().size()];
    for (int i = 0; i < ranks.length; i++) ranks[i] = options.supportedLoraRanks().get(i);
    long e = NativeBridge.createEngine(options.modelPath(), options.maxTokens(), options.maxTopK(), ranks);
    this.memory = NativeBridge.engineMemory(e);
    this.modelName = new File(options.modelPath()).getName();
    if (host != null) {
      try {
        host.admitEngine(modelName, options.maxTokens(), memory);
      } catch (RuntimeException refused) {
        NativeBridge.deleteEngine(e);
        throw refused;
      }
    }
    if (options.loraPath().isPresent()) {
      // read and checked now, as on Android: a bad adapter fails createFromOptions, not the first response
      try {
        NativeBridge.deleteSession(NativeBridge.createSession(e, 1, 1.0f, 0.0f, 0, options.loraPath().get()));
      } catch (RuntimeException refused) {
        if (host != null) host.releaseEngine(memory);
        NativeBridge.deleteEngine(e);
        throw refused;
      }
    }
    this.engine = e;
  }

  /** The response to inputText, in a new session; blocks until done. A lone surrogate: IllegalArgumentException. */
  public String generateResponse(String inputText) {
    ValidText.check("inputText", inputText);
    LlmInferenceSession session = resetImplicitSession();
    session.addQueryChunk(inputText);
    return session.generateResponse();
  }

  /** Generates on a JVM thread, streaming to the options' result listener; the future gives the whole text. */
  public ListenableFuture<String> generateResponseAsync(String inputText) {
    return generateResponseAsync(inputText, options.resultListener().orElse(null));
  }

  /** Generates on a JVM thread, streaming pieces to progressListener (done = true last). */
  public ListenableFuture<String> generateResponseAsync(String inputText, ProgressListener<String> progressListener) {
    ValidText.check("inputText", inputText); // thrown here, in the caller's thread, before any work
    LlmInferenceSession session = resetImplicitSession();
    session.addQueryChunk(inputText);
    return session.generateResponseAsync(progressListener);
  }

  /** Tokens text encodes to (no BOS, no template). */
  public int sizeInTokens(String text) {
    ValidText.check("text", text);
    return resetImplicitSession().sizeInTokens(text);
  }

  /** Stops a running generation, closes the sessions' engine and returns its memory. */
  @Override
  public synchronized void close() {
    if (engine == 0) return;
    if (implicitSession != null) {
      implicitSession.close();
      implicitSession = null;
    }
    NativeBridge.deleteEngine(engine); // sessions still open keep the model until they close
    engine = 0;
    if (host != null) host.releaseEngine(memory);
  }

  private synchronized LlmInferenceSession resetImplicitSession() {
    if (implicitSession != null) {
      implicitSession.close();
      implicitSession = null;
    }
    implicitSession = LlmInferenceSession.createFromOptions(this, LlmInferenceSession.LlmInferenceSessionOptions.builder()
        .setTopK(options.topK()).setTemperature(options.temperature()).setRandomSeed(options.randomSeed())
        .setLoraPath(options.loraPath().orElse(null)).build());
    return implicitSession;
  }

  synchronized long engineHandle() {
    if (engine == 0) throw new IllegalStateException("LlmInference is closed");
    return engine;
  }

  HostContext host() {
    return host;
  }

  /** {weights, one session's KV cache, its other buffers}, in bytes. */
  long[] memory() {
    return memory.clone();
  }

  LlmInferenceOptions options() {
    return options;
  }

  /** Options of an {@link LlmInference}, with MediaPipe's defaults. */
  public static final class LlmInferenceOptions {
    private final String modelPath;
    private final int maxTokens, maxTopK, maxNumImages, topK, randomSeed;
    private final float temperature;
    private final List<Integer> supportedLoraRanks;
    private final Optional<Backend> preferredBackend;
    private final Optional<String> loraPath;
    private final Optional<ProgressListener<String>> resultListener;
    private final Optional<ErrorListener> errorListener;

    private LlmInferenceOptions(Builder b) {
      modelPath = b.modelPath;
      maxTokens = b.maxTokens;
      maxTopK = b.maxTopK;
      maxNumImages = b.maxNumImages;
      topK = b.topK;
      randomSeed = b.randomSeed;
      temperature = b.temperature;
      supportedLoraRanks = Collections.unmodifiableList(new ArrayList<>(b.supportedLoraRanks));
      preferredBackend = Optional.ofNullable(b.preferredBackend);
      loraPath = Optional.ofNullable(b.loraPath);
      resultListener = Optional.ofNullable(b.resultListener);
      errorListener = Optional.ofNullable(b.errorListener);
    }

    /** The model: a .task bundle or a GGUF file. */
    public String modelPath() { return modelPath; }
    /** Input + output tokens a session holds (the KV cache's length). */
    public int maxTokens() { return maxTokens; }
    /** The largest topK a session of this engine may use. */
    public int maxTopK() { return maxTopK; }
    public int maxNumImages() { return maxNumImages; }
    public List<Integer> supportedLoraRanks() { return supportedLoraRanks; }
    public Optional<Backend> preferredBackend() { return preferredBackend; }
    /** topK, temperature and randomSeed of generateResponse's sessions (the earlier API's setters). */
    public int topK() { return topK; }
    public float temperature() { return temperature; }
    public int randomSeed() { return randomSeed; }
    /** The LoRA adapter of generateResponse's sessions and of every session whose options name none. */
    public Optional<String> loraPath() { return loraPath; }
    public Optional<ProgressListener<String>> resultListener() { return resultListener; }
    public Optional<ErrorListener> errorListener() { return errorListener; }

    public Builder toBuilder() {
      Builder b = new Builder();
      b.modelPath = modelPath;
      b.maxTokens = maxTokens;
      b.maxTopK = maxTopK;
      b.maxNumImages = maxNumImages;
      b.topK = topK;
      b.randomSeed = randomSeed;
      b.temperature = temperature;
      b.supportedLoraRanks = supportedLoraRanks;
      b.preferredBackend = preferredBackend.orElse(null);
      b.loraPath = loraPath.orElse(null);
      b.resultListener = resultListener.orElse(null);
      b.errorListener = errorListener.orElse(null);
      return b;
    }

    public static Builder builder() {
      return new Builder();
    }

    /** Builder for {@link LlmInferenceOptions}: maxTokens 512, maxTopK 40, topK 40, temperature 0.8, seed 0. */
    public static final class Builder {
      private String modelPath;
      private int maxTokens = 512, maxTopK = 40, maxNumImages = 0, topK = 40, randomSeed = 0;
      private float temperature = 0.8f;
      private List<Integer> supportedLoraRanks = Collections.emptyList();
      private Backend preferredBackend;
      private String loraPath;
      private ProgressListener<String> resultListener;
      private ErrorListener errorListener;

      private Builder() {}

      public Builder setModelPath(String modelPath) { this.modelPath = modelPath; return this; }
      public Builder setMaxTokens(int maxTokens) { this.maxTokens = maxTokens; return this; }
      public Builder setMaxTopK(int maxTopK) { this.maxTopK = maxTopK; return this; }
      public Builder setMaxNumImages(int maxNumImages) { this.maxNumImages = maxNumImages; return this; }
      public Builder setSupportedLoraRanks(List<Integer> ranks) {
        this.supportedLoraRanks = ranks == null ? Collections.emptyList() : ranks;
        return this;
      }
      public Builder setPreferredBackend(Backend backend) { this.preferredBackend = backend; return this; }
      public Builder setTopK(int topK) { this.topK = topK; return this; }
      public Builder setTemperature(float temperature) { this.temperature = temperature; return this; }
      public Builder setRandomSeed(int randomSeed) { this.randomSeed = randomSeed; return this; }
      public Builder setLoraPath(String loraPath) { this.loraPath = loraPath; return this; }
      public Builder setResultListener(ProgressListener<String> listener) { this.resultListener = listener; return this; }
      public Builder setErrorListener(ErrorListener listener) { this.errorListener = listener; return this; }

      /** Checks the options; a bad value throws IllegalArgumentException naming it. */
      public LlmInferenceOptions build() {
        if (modelPath == null || modelPath.isEmpty()) throw new IllegalArgumentException("modelPath is required");
        if (maxTokens < 1) throw new IllegalArgumentException("maxTokens must be >= 1, got " + maxTokens);
        if (maxTopK < 1) throw new IllegalArgumentException("maxTopK must be >= 1, got " + maxTopK);
        if (topK < 1) throw new IllegalArgumentException("topK must be >= 1, got " + topK);
        if (topK > maxTopK) {
          throw new IllegalArgumentException("topK " + topK + " is larger than maxTopK " + maxTopK);
        }
        if (!(temperature >= 0)) throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        if (maxNumImages < 0) throw new IllegalArgumentException("maxNumImages must be >= 0, got " + maxNumImages);
        for (Integer r : supportedLoraRanks) {
          if (r == null || r < 1) throw new IllegalArgumentException("supportedLoraRanks must be >= 1, got " + r);
        }
        return new LlmInferenceOptions(this);
      }
    }
  }
}

package pocketlm;

/**
 * The native methods over libpocketlm's MediaPipe C API (bridge/pocketlm_jni.c),
 * loaded from libpocketlm_jni.so on java.library.path (`pocketlm config
 * --java-library-path` prints the folder). Handles are the C API's pointers;
 * the Java classes own them and free them in close(). Not an API of its own.
 */
public final class NativeBridge {
  static {
    System.loadLibrary("pocketlm_jni");
  }

  private NativeBridge() {}

  /** Receives PredictAsync's pieces on the generation thread. */
  public interface Pieces {
    void onPiece(String text, boolean done);
  }

  public static native long createEngine(String modelPath, int maxTokens, int maxTopK, int[] supportedLoraRanks);

  public static native void deleteEngine(long engine);

  /** {weights, KV cache of one session, its other buffers}, in bytes. */
  public static native long[] engineMemory(long engine);

  /** Caps the threads every generation uses (process-wide); returns the cap before. */
  public static native int setMaxThreads(int n);

  public static native long createSession(
      long engine, int topK, float topP, float temperature, int randomSeed, String loraPath);

  public static native void deleteSession(long session);

  /** userPrefix, userSuffix, modelPrefix, modelSuffix, systemPrefix, systemSuffix. */
  public static native void setPromptTemplates(long session, String[] fields);

  public static native void addQueryChunk(long session, String text);

  public static native String predictSync(long session);

  public static native void predictAsync(long session, Pieces pieces);

  public static native long cloneSession(long session);

  public static native int sizeInTokens(long session, String text);

  public static native void cancel(long session);

  /**
   * The engine's turn templates: {userPrefix, userSuffix, modelPrefix, modelSuffix, systemPrefix,
   * systemSuffix, preamble, family}, or null when the model has none.
   */
  public static native String[] turnTemplates(long engine);

  /** Engines, sessions and unfinished async generations the bridge holds (0 when all are closed). */
  public static native long liveObjects();
}

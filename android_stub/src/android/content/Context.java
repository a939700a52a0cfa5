package android.content;

import java.io.File;

/**
 * The part of Android's {@code android.content.Context} that the LLM Inference
 * task uses: where an app may cache files. Abstract, as on Android; on the host
 * JVM, {@link pocketlm.HostContext} is the implementation, and it also holds
 * the run to a phone's memory budget and threads.
 */
public abstract class Context {
  /** The app's cache folder. */
  public abstract File getCacheDir();

  /** This context (an app's context on Android). */
  public Context getApplicationContext() {
    return this;
  }
}

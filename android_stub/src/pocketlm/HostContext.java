package pocketlm;

import android.content.Context;
import java.io.File;

/**
 * The host JVM's {@link Context}: pass it to {@code LlmInference.createFromOptions}.
 * With a device profile name ("pixel_8", "low_end_4gb", ...) the run is held
 * to that phone as pocketlm's Python DeviceContext holds it: a model whose
 * weights, KV cache and buffers exceed the app memory budget is refused before
 * any session exists, every session's KV cache and buffers are counted, and
 * generation uses the profile's threads. {@code null}: no limits.
 */
public class HostContext extends Context {
  /** What the runtime holds besides model, KV cache and buffers (Python: RUNTIME_OVERHEAD_BYTES). */
  public static final long RUNTIME_OVERHEAD_BYTES = 32L * 1024 * 1024;

  private final DeviceProfile profile;
  private final File cacheDir;
  private long inUse;
  private long peak;
  private int savedThreads = -1;
  private int engines;

  public HostContext(String profileName) {
    this.profile = profileName == null ? null : DeviceProfile.load(profileName);
    this.cacheDir = new File(System.getProperty("java.io.tmpdir"), "pocketlm-cache");
  }

  /** The phone this context stands for, or null. */
  public DeviceProfile getProfile() {
    return profile;
  }

  @Override
  public File getCacheDir() {
    cacheDir.mkdirs();
    return cacheDir;
  }

  /** Bytes counted against the budget now, and the most at any time. */
  public synchronized long getMemoryInUse() {
    return inUse;
  }

  public synchronized long getPeakMemory() {
    return peak;
  }

  /**
   * Called by LlmInference once the model is open: refuses a model that does not fit
   * with one session of maxTokens, with the figures pocketlm's Python side gives, then
   * holds the weights and the runtime and caps the threads.
   */
  public synchronized void admitEngine(String modelName, int maxTokens, long[] memory) {
    if (profile == null) return;
    long weights = memory[0], kv = memory[1], buffers = memory[2];
    long total = weights + kv + buffers + RUNTIME_OVERHEAD_BYTES;
    long budget = profile.appMemoryBudget;
    if (total > budget) {
      String idea = "";
      long perToken = maxTokens > 0 ? kv / maxTokens : 0;
      long room = budget - weights - RUNTIME_OVERHEAD_BYTES - buffers;
      if (perToken > 0 && room > 0 && room / perToken >= 1 && room / perToken < maxTokens) {
        idea = "Would fit: maxTokens <= " + (room / perToken) + ".";
      }
      throw new DeviceMemoryException(modelName + " needs " + DeviceProfile.format(total) + " with maxTokens "
          + maxTokens + " (weights " + DeviceProfile.format(weights) + ", KV cache " + DeviceProfile.format(kv)
          + ", activations " + DeviceProfile.format(buffers) + ", runtime "
          + DeviceProfile.format(RUNTIME_OVERHEAD_BYTES) + "), but " + profile.displayName + " lets an app hold "
          + DeviceProfile.format(budget) + " of its " + DeviceProfile.format(profile.ramBytes) + ". "
          + (idea.isEmpty() ? "Nothing smaller of this model would fit." : idea));
    }
    reserve("weights", weights + RUNTIME_OVERHEAD_BYTES);
    if (engines++ == 0) savedThreads = NativeBridge.setMaxThreads(profile.threads);
  }

  /** Returns what admitEngine held; the thread cap goes back when the last engine closes. */
  public synchronized void releaseEngine(long[] memory) {
    if (profile == null) return;
    release(memory[0] + RUNTIME_OVERHEAD_BYTES);
    if (--engines == 0 && savedThreads >= 0) {
      NativeBridge.setMaxThreads(savedThreads);
      savedThreads = -1;
    }
  }

  /** Counts nbytes against the budget, or refuses them (what: the part, for the message). */
  public synchronized void reserve(String what, long nbytes) {
    if (profile == null) return;
    if (inUse + nbytes > profile.appMemoryBudget) {
      throw new DeviceMemoryException(what + " needs " + DeviceProfile.format(nbytes) + " more, with "
          + DeviceProfile.format(inUse) + " already held; " + profile.displayName + " lets an app hold "
          + DeviceProfile.format(profile.appMemoryBudget));
    }
    inUse += nbytes;
    peak = Math.max(peak, inUse);
  }

  public synchronized void release(long nbytes) {
    if (profile == null) return;
    inUse -= nbytes;
  }

  @Override
  public String toString() {
    return "HostContext(" + (profile == null ? "no device limits" : profile.name) + ")";
  }
}

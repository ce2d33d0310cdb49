package dev.qnat.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;

/**
 * A Jazzer fuzz test with our bounds: a minute of fuzzing, and 10 seconds per input. The per-input limit
 * is JUnit's timeout in regression mode ({@code ./mvnw verify}, one invocation per input) and libFuzzer's
 * {@code -timeout} in fuzzing mode, where {@code fuzz.sh} turns JUnit's own timeout off: otherwise JUnit
 * would apply it to the whole fuzzing run, which is one invocation (Jazzer issue #930).
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
@FuzzTest(maxDuration = "60s")
public @interface BoundedFuzzTest {}

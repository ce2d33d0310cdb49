/** Facts about the library itself: {@link dev.qnat.Qnat#VERSION}. */
package dev.qnat;

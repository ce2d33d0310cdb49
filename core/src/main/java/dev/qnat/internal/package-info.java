/**
 * Helpers that several of qnat's packages share but that are not part of its API: this package is not
 * exported from the module {@code dev.qnat.core}, so its types (and the Jackson types they use) never
 * appear in a user's view of the library.
 */
package dev.qnat.internal;

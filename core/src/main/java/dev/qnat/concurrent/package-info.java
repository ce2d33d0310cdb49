/** The writers' worker threads ({@link dev.qnat.concurrent.Workers}). */
package dev.qnat.concurrent;

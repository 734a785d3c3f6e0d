# Reads `perf script -F pid,ip,sym,dso` output with call chains (one sample: a line with the
# pid, then one line per frame, leaf first, then a blank line) and prints a Markdown table: the
# share of samples in each part of the stack, for the leader process (-v leader=PID) and for the
# other processes (the followers).
#
# A sample whose leaf frame is in the kernel counts for the kernel work its frames name (fsync
# and block I/O first, then TCP, then wake-ups, then file reads and writes, then page faults).
# A user-space sample counts for the first library frame from the leaf up, so a memcpy inside
# h2 counts for h2; allocator leaves count as the allocator wherever they are called from.

function kernel_part(   i, f) {
  for (i = 1; i <= n; i++) if (frame[i] ~ /fsync|fdatasync|jbd2|blk_|submit_bio|nvme|virtblk|virtio_queue/) return "kernel: fsync, block I/O"
  for (i = 1; i <= n; i++) if (frame[i] ~ /tcp_|inet_|sock_|skb|net_rx|__netif|loopback_xmit|ip_finish|__dev_queue_xmit/) return "kernel: TCP over loopback"
  for (i = 1; i <= n; i++) if (frame[i] ~ /futex|schedule|epoll|try_to_wake_up|finish_task_switch|sched_yield|nanosleep|hrtimer/) return "kernel: wake-ups, scheduling, timers"
  for (i = 1; i <= n; i++) if (frame[i] ~ /vfs_write|vfs_read|ext4_file|generic_perform_write|filemap|copy_page|iomap/) return "kernel: file reads and writes"
  for (i = 1; i <= n; i++) if (frame[i] ~ /page_fault|do_user_addr_fault|mmap|munmap|madvise/) return "kernel: page faults, mmap"
  return "kernel: other"
}

function user_part(   i, f) {
  if (frame[1] ~ /^(malloc|free|realloc|calloc|cfree|_int_|__libc_malloc|__libc_free|__GI___libc_free|__libc_calloc|__libc_realloc|tcache|malloc_consolidate|unlink_chunk)/) return "allocator (glibc malloc)"
  for (i = 1; i <= n; i++) {
    f = frame[i]
    sub(/^</, "", f)
    if (f ~ /^ring::|^ring_core_|^(aes|gcm|chacha|poly1305|sha256|sha512|x25519|ecp_nistz256|bn_)/) return "TLS: crypto (ring)"
    if (f ~ /^(rustls|tokio_rustls)::/) return "TLS: rustls records"
    if (f ~ /^h2::/) return "HTTP/2 (h2)"
    if (f ~ /^(hyper|hyper_util)::/) return "hyper"
    if (f ~ /^(tonic|prost|tower|tower_layer|http_body|http_body_util)::/) return "gRPC (tonic, prost, tower)"
    if (f ~ /^openraft::/) return "openraft"
    if (f ~ /^(tracing|tracing_core|tracing_subscriber)::/) return "tracing"
    if (f ~ /^proglog_log::/) return "ProgLog storage engine"
    if (f ~ /^(proglog_node|proglog_proto|proglog_node_lib)::|^proglog/) return "ProgLog node"
    if (f ~ /^tokio::/) return "tokio runtime"
  }
  return "other user space (std, libc)"
}

function flush_sample(   part, k) {
  if (n == 0) return
  part = (dso[1] ~ /kernel/) ? kernel_part() : user_part()
  k = (pid == leader) ? "leader" : "followers"
  count[part, k]++
  total[k]++
  parts[part] = 1
  n = 0
}

/^[ \t]*[0-9]+[ \t]*$/ { flush_sample(); pid = $1 + 0; next }
/^[ \t]*$/ { flush_sample(); next }
{
  # "<ip> <symbol words...> (<dso>)"
  line = $0
  sub(/^[ \t]*[0-9a-f]+ /, "", line)
  d = line
  sub(/^.* \(/, "", d); sub(/\)$/, "", d)
  sub(/ \([^()]*\)$/, "", line)
  n++
  frame[n] = line
  dso[n] = d
}

END {
  flush_sample()
  printf "| part of the stack | leader %% of its samples | followers %% of theirs |\n|---|---:|---:|\n"
  # Sorted by the leader's share, largest first.
  m = 0
  for (p in parts) { order[++m] = p }
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
    if (count[order[j], "leader"] > count[order[i], "leader"]) { t = order[i]; order[i] = order[j]; order[j] = t }
  for (i = 1; i <= m; i++) {
    p = order[i]
    printf "| %s | %.1f | %.1f |\n", p, total["leader"] ? 100 * count[p, "leader"] / total["leader"] : 0, total["followers"] ? 100 * count[p, "followers"] / total["followers"] : 0
  }
  printf "| samples | %d | %d |\n", total["leader"], total["followers"]
}

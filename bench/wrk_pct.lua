-- wrk_pct.lua - prints the 90th and 99.9th latency percentiles of a wrk
-- run, for bench/servers.sh (wrk --latency -s bench/wrk_pct.lua).
--
-- wrk --latency prints only 50, 75, 90 and 99 %, and rounds what it
-- prints (4.82ms: to 10 us).  done() runs once, after wrk's own report,
-- with the latencies of every thread's requests; it prints one line a
-- percentile, "pct P US": P the percentile, US its latency in whole
-- microseconds, wrk's unit.  Only done() is defined: with no request()
-- of its own, wrk still sends its one prepared request on every
-- connection, so the script costs the load nothing.
done = function(summary, latency, requests)
	for _, p in ipairs({ 90, 99.9 }) do
		io.write(string.format("pct %g %d\n", p, latency:percentile(p)))
	end
end

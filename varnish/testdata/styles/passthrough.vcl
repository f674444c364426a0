vcl 4.1;
# Style "passthrough": an instance that adds no cache header of its own and
# delivers the origin's response headers as stored with the object; written
# for cdnpurge's end-to-end tests. Template fields: {{.OriginHost}},
# {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in responses and no
# token or ACL is used.
#
# PURGE <path>  return (purge) for anyone: 200 "Purged", also when nothing
#               was cached.
# BAN, tags     not handled: the built-in VCL pipes methods it does not know
#               (BAN, PURGEKEYS) to the origin, which answers them.
#
# Evidence: whatever cache headers the origin sent are stored and repeated on
# every hit. An origin behind another CDN may send `Cache-Status:
# OriginCDN; fwd=miss` or `X-Cache: Miss from cloudfront`: those describe the
# origin's cache at fetch time, not this instance, and say "miss" on a hit
# here too. Only X-Varnish and Age tell this instance's story:
#   hit    X-Varnish: two ids, Age counts up (origin headers unchanged)
#   miss   X-Varnish: one id, Age: the origin's Age or 0
#   stale  like a hit, Age beyond the object's max-age
#   pass   like a miss
#   synth  one id, no Age, no origin headers

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        return (purge);
    }
}

vcl 4.1;
# Style "users-guide": the purging example of the Varnish users guide
# ("Purging and banning"), written for cdnpurge's end-to-end tests: an ACL and
# return (purge), nothing else. Template fields: {{.OriginHost}},
# {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in responses and no
# token is used: the ACL decides.
#
# PURGE <path>  from acl purge (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8):
#               return (purge), 200 "Purged", also when nothing was cached.
#               From anywhere else: 405 "Not allowed.".
# BAN, tags     not handled: the built-in VCL pipes methods it does not know
#               (BAN, PURGEKEYS) to the origin, which answers them.
#
# Evidence: no cache header at all. X-Varnish and Age are all there is:
#   hit    X-Varnish: two ids (this request's and the object's), Age counts up
#   miss   X-Varnish: one id, Age: 0
#   stale  like a hit (two ids), Age beyond the object's max-age
#   pass   like a miss (one id, Age: 0)
#   synth  one id, no Age; the purge answer and errors

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purge {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    # PURGE only from the addresses above.
    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "Not allowed."));
        }
        return (purge);
    }
}

/*
  Attack tooling commonly dropped into compromised containers.
*/

rule tool_privesc_enumeration
{
    meta:
        description = "Linux privilege escalation enumeration script (linPEAS, LinEnum, les)"
        severity = "high"
    strings:
        $a = "linpeas" ascii nocase
        $b = "LinEnum" ascii
        $c = "linux-exploit-suggester" ascii nocase
        $d = "PEASS-ng" ascii
    condition:
        filesize < 10MB and any of them
}

rule tool_container_escape
{
    meta:
        description = "container escape or breakout helper (cdk, deepce, release_agent trick)"
        severity = "critical"
    strings:
        $a = "deepce" ascii nocase
        $b = "cdk-team" ascii
        $c = "release_agent" ascii
        $d = "notify_on_release" ascii
        $e = "/proc/sysrq-trigger" ascii
        $f = "docker.sock" ascii
        $g = "nsenter --target 1" ascii
    condition:
        filesize < 50MB and ($a or $b or ($c and $d) or ($f and $g) or ($e and $g))
}

rule tool_tunnel
{
    meta:
        description = "tunnelling tool (chisel, gsocket, frp, ngrok)"
        severity = "high"
    strings:
        $a = "jpillora/chisel" ascii
        $b = "gsocket" ascii
        $c = "GS_SECRET" ascii
        $d = "fatedier/frp" ascii
        $e = "ngrok.com" ascii
    condition:
        any of them
}

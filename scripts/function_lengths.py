#!/usr/bin/env python3
# Lists the functions longer than a limit in C++ sources and exits 1 if there are any:
#   scripts/function_lengths.py LIMIT PATH...
# A brace-matching heuristic (strings, chars and comments skipped): a '{' after a ')' (optionally
# followed by const/noexcept/override/-> type/initialiser list) outside control statements opens
# a function body; lambdas count towards the function around them. A function may be longer when
# a comment "long function: <why>" stands within the 4 lines above its opening brace.
import re, sys, os
limit = int(sys.argv[1]); paths = sys.argv[2:]
ctrl = re.compile(r'\b(if|for|while|switch|catch|do|else)\b\s*(\(|$)')
def strip(src):
    out=[]; i=0; n=len(src)
    while i<n:
        c=src[i]
        if src.startswith('//',i):
            j=src.find('\n',i); j=n if j<0 else j; out.append(' '*(j-i)); i=j
        elif src.startswith('/*',i):
            j=src.find('*/',i)+2; out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j
        elif c=='"' or c=="'":
            if c=='"' and i>0 and src[i-1]=='R':
                m=re.match(r'R"([^(]*)\(',src[i-1:]); end=')'+m.group(1)+'"'; j=src.find(end,i)+len(end)
            else:
                j=i+1
                while j<n and src[j]!=c:
                    j+= 2 if src[j]=='\\' else 1
                j+=1
            out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j
        else: out.append(c); i+=1
    return ''.join(out)
def scan(path):
    raw=open(path,errors='replace').read()
    lines=raw.split('\n')
    s=strip(raw)
    stack=[]; res=[]; last=0
    for i,c in enumerate(s):
        if c=='{':
            head=s[last:i]
            h=' '.join(head.split())
            is_fn = bool(re.search(r'\)\s*(const|noexcept|override|final|mutable|->\s*[\w:<>,\s*&]+|\s)*$', h)) or bool(re.search(r'\)\s*:\s*[\w:]+[({].*[)}]\s*$',h))
            is_fn = is_fn and not ctrl.search(h.split(')')[0][-40:] if ')' in h else h) and not re.search(r'\]\s*\(.*\)\s*(mutable|->.*)?\s*$',h) and not re.search(r'\b(if|for|while|switch|catch)\s*\(',h)
            infn = any(k for k,_ in stack)
            stack.append((is_fn and not infn, s.count('\n',0,i)+1))
            last=i+1
        elif c=='}':
            if stack:
                fn,line=stack.pop()
                if fn:
                    end=s.count('\n',0,i)+1
                    excused=any('long function:' in l for l in lines[max(0,line-5):line])
                    if not excused: res.append((end-line+1,line,end))
            last=i+1
        elif c==';': last=i+1
    return res
found=0
for p in paths:
    for root,_,fs in os.walk(p) if os.path.isdir(p) else [('',None,[p])]:
        for f in fs:
            if not f.endswith(('.hpp','.cpp','.h','.c')): continue
            path=os.path.join(root,f)
            for n,a,b in scan(path):
                if n>limit:
                    print(f'FAIL {path}:{a}-{b}: a function of {n} lines (limit {limit})')
                    found=1
sys.exit(found)

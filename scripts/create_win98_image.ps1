<#
.SYNOPSIS
  Rebuild the Windows 98 snapshot when the registry cannot supply it (Windows hosts).
.DESCRIPTION
  A thin front door to `loco snapshot rebuild` (python -m loco_lan.image_build); every
  argument is passed through. Needs Python 3.11 to 3.13 with the loco-lan package installed and
  QEMU for Windows (qemu-img.exe, qemu-system-i386.exe) on PATH.
.EXAMPLE
  .\scripts\create_win98_image.ps1 images\win98.qcow2 --from-disk C:\VMs\win98.vhdx
.EXAMPLE
  .\scripts\create_win98_image.ps1 images\win98.qcow2 --from-iso C:\ISO\win98se.iso --vnc 127.0.0.1:1
#>
$ErrorActionPreference = 'Stop'
$repo = Split-Path -Parent $PSScriptRoot
$python = $env:LOCO_PYTHON
$launcherArgs = @()
if (-not $python) {
    $venv = Join-Path $repo '.venv\Scripts\python.exe'
    if (Test-Path $venv) { $python = $venv }
    elseif (Get-Command py -ErrorAction SilentlyContinue) { $python = 'py'; $launcherArgs = @('-3') }
    else { $python = 'python' }
}
& $python @launcherArgs -m loco_lan.image_build @args
exit $LASTEXITCODE
